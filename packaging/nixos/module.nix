# services.nixfleet-log-exporter: the options nixpkgs gives every Prometheus exporter, plus what
# this one reads (journalUnit, or logFile), its state file and web config, with the hardening of
# packaging/systemd/nixfleet-log-exporter.service.
#   imports = [ ./packaging/nixos/module.nix ];
#   services.nixfleet-log-exporter = { enable = true; journalUnit = "nixfleet-control-plane"; };
{ config, lib, pkgs, ... }:

let
  cfg = config.services.nixfleet-log-exporter;
  inherit (lib) mkOption mkEnableOption mkIf types;

  # Where the exporter reads: a log file when one is given, else the journal of a unit.
  readsJournal = cfg.logFile == null;
  sourceFlags = if readsJournal then [ "--journal-unit" cfg.journalUnit ] else [ cfg.logFile ];

  flags = [
    "follow"
    "--web.listen-address" "${cfg.listenAddress}:${toString cfg.port}"
    "--state-file" "/var/lib/nixfleet-log-exporter/${cfg.stateFile}"
  ]
  ++ lib.optionals (cfg.webConfigFile != null) [ "--web.config.file" "${cfg.webConfigFile}" ]
  ++ cfg.extraFlags
  ++ sourceFlags;
in
{
  options.services.nixfleet-log-exporter = {
    enable = mkEnableOption "the nixfleet control plane log exporter";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = "pkgs.callPackage ./package.nix { }";
      description = "The nixfleet-log-exporter package to run.";
    };

    port = mkOption {
      type = types.port;
      default = 9761;
      description = "Port to serve metrics on.";
    };

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address to serve metrics on; \"\" or \"0.0.0.0\" for every IPv4 address.";
    };

    extraFlags = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--max-series" "20000" ];
      description = "Extra command line flags of `nixfleet-log-exporter follow`.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the port in the firewall.";
    };

    user = mkOption {
      type = types.str;
      default = "nixfleet-log-exporter";
      description = "User the exporter runs as (a dynamic user unless defined in users.users).";
    };

    group = mkOption {
      type = types.str;
      default = "nixfleet-log-exporter";
      description = "Group the exporter runs as.";
    };

    journalUnit = mkOption {
      type = types.str;
      default = "nixfleet-control-plane";
      description = "Read the systemd journal of this unit (unless logFile is set).";
    };

    logFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/log/nixfleet/cp.log";
      description = ''
        Follow this log file (a glob is allowed, across rotation) instead of the journal. Its
        directory is mounted read-only; the user or group must be able to read it.
      '';
    };

    stateFile = mkOption {
      type = types.str;
      default = "state.json";
      description = "State file name under /var/lib/nixfleet-log-exporter (the StateDirectory).";
    };

    webConfigFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "Web config (TLS, basic auth) in Prometheus exporter-toolkit's format.";
    };
  };

  config = mkIf cfg.enable {
    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall [ cfg.port ];

    systemd.services.nixfleet-log-exporter = {
      description = "nixfleet control plane log exporter";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ] ++ lib.optionals readsJournal [ "${cfg.journalUnit}.service" ];
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/nixfleet-log-exporter ${lib.escapeShellArgs flags}";
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "1s";
        User = cfg.user;
        Group = cfg.group;
        DynamicUser = true;
        StateDirectory = "nixfleet-log-exporter";
        StateDirectoryMode = "0700";
        SupplementaryGroups = lib.optionals readsJournal [ "systemd-journal" ];
        ReadOnlyPaths = lib.optionals (!readsJournal) [ (dirOf cfg.logFile) ];
        UMask = "0077";
        NoNewPrivileges = true;
        CapabilityBoundingSet = [ "" ];
        AmbientCapabilities = [ "" ];
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = true;
        ProtectHostname = true;
        ProtectClock = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        DevicePolicy = "closed";
        KeyringMode = "private";
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
