# Evaluates module.nix without nixpkgs, for tests/integration/test_packaging_nixos.py:
#   nix-instantiate --eval --strict --json eval-module.nix --arg settings '{ ... }'
# `lib` and `pkgs` are stubs of exactly what the module uses; option defaults are filled in, then
# `settings` override them, as the module system would for services.nixfleet-log-exporter.
{ settings ? { } }:

let
  lib = rec {
    mkOption = option: option;
    mkEnableOption = name: { default = false; description = "Whether to enable ${name}."; };
    mkIf = condition: value: if condition then value else { };
    optionals = condition: list: if condition then list else [ ];
    types = {
      bool = "bool"; str = "str"; port = "port"; path = "path"; package = "package";
      listOf = type: "listOf ${type}";
      nullOr = type: "nullOr ${type}";
    };
    # nixpkgs quotes only arguments that need it; quoting every one is as valid for systemd.
    escapeShellArg = arg: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
    escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);
  };
  pkgs = {
    callPackage = path: args: "/nix/store/00000000000000000000000000000000-nixfleet-log-exporter-0.1.0";
    coreutils = "/nix/store/00000000000000000000000000000000-coreutils";
  };
  evaluate = config: import ../module.nix { inherit config lib pkgs; };
  options = (evaluate { }).options.services.nixfleet-log-exporter;
  defaults = builtins.mapAttrs (name: option: option.default) options;
  result = evaluate { services.nixfleet-log-exporter = defaults // settings; };
in
{
  optionNames = builtins.attrNames options;
  inherit defaults;
  config = result.config;
}
