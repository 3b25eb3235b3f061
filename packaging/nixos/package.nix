# nixfleet-log-exporter built with nixpkgs' own libraries:
#   pkgs.callPackage ./packaging/nixos/package.nix { }
{ lib, stdenv, cmake, ninja, pkg-config, python3, cli11, re2, simdjson, httplib, catch2, zlib, systemd }:

stdenv.mkDerivation {
  pname = "nixfleet-log-exporter";
  version = "0.1.0";

  src = lib.cleanSource ../..;

  nativeBuildInputs = [ cmake ninja pkg-config python3 ];
  buildInputs = [ cli11 re2 simdjson httplib zlib systemd ];
  checkInputs = [ catch2 ];

  cmakeFlags = [ "-DBUILD_TESTING=${if stdenv.hostPlatform == stdenv.buildPlatform then "ON" else "OFF"}" ];
  # The unit tests only; the integration tests need Prometheus and a journal.
  doCheck = true;
  checkPhase = ''
    runHook preCheck
    ctest --output-on-failure -LE integration
    runHook postCheck
  '';

  meta = {
    description = "Prometheus exporter for the nixfleet control plane's log";
    mainProgram = "nixfleet-log-exporter";
    platforms = lib.platforms.linux;
  };
}
