"""The exit codes of every ``libmirror`` command, and the text ``--help`` shows about them.

One place for both, so the codes a command returns and the codes its help (and the README) promises
cannot drift apart. ``status --check`` follows the monitoring-plugin convention (Nagios, Icinga,
rclone's checks) instead: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_GATE = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130

CHECK_OK = 0
CHECK_WARNING = 1
CHECK_CRITICAL = 2
CHECK_UNKNOWN = 3

_USAGE = "2    the command line is wrong (argparse prints why)"

EPILOGS: dict[str, str] = {
    "libmirror": f"""exit codes (each command's --help lists its own):
  0    success / in sync
  1    some actions failed (retried next pass), the state store cannot be read, or `run` cannot
       listen on metrics_listen
  {_USAGE}; or a configuration error
  3    a safety gate held back deletes or overwrites (sync)
  4    another process holds the state store (run, sync)
  130  interrupted (Ctrl-C)""",
    "sync": """exit codes:
  0    in sync
  1    some actions failed (they are retried by the next pass)
  2    configuration error, unknown --library, or run as root without allow_root = true
  3    a safety gate held back deletes or overwrites (see `status`; --confirm-deletes lets them through)
  4    another process holds the state store (nothing was done; the message names its pid)""",
    "run": """exit codes:
  0    stopped cleanly (SIGTERM / SIGINT)
  1    could not start: metrics_listen cannot be listened on (address in use, not permitted)
  2    configuration error, or run as root without allow_root = true
  4    another process holds the state store""",
    "release-gate": """exit codes:
  0    release requested, or nothing is held
  1    the state store cannot be read
  2    configuration error, unknown library, or run as root without allow_root = true""",
    "pause": """exit codes:
  0    paused (or already paused); a running service skips the library from its next poll on
  2    configuration error, unknown library, or run as root without allow_root = true""",
    "resume": """exit codes:
  0    resumed (or was not paused); a running service syncs the library again from its next poll
  2    configuration error, unknown library, or run as root without allow_root = true""",
    "check-config": """exit codes:
  0    the configuration is valid
  2    it is not (every problem is printed: file, key, fix)""",
    "status": """exit codes without --check (--metrics too):
  0    shown (also when there is no state yet)
  1    the state store cannot be read as it is (e.g. another schema version)
  2    configuration error; --metrics combined with --json or --check

exit codes with --check (monitoring-plugin convention, one line per library):
  0    OK        every library in sync within its expected interval
  1    WARNING   a held safety gate, files in backoff, a paused library, a library on periodic
                 rescans (watcher unavailable), a last successful pass older than 3 poll
                 intervals, or a failure since the last successful pass
  2    CRITICAL  a library failing every pass for longer than 3 poll intervals (or since it was
                 added), credentials rejected, or the state store unreadable
  3    UNKNOWN   no state yet (no pass has run), or the configuration is invalid""",
    "example-config": """exit codes:
  0    the annotated example configuration was printed""",
    "demo": """exit codes:
  0    done (or stopped with Ctrl-C); with --once, as `sync`: 1 actions failed, 3 a gate held changes
  4    another process holds the demo's state store""",
    "sandbox": """exit codes:
  0    stopped
  2    a bad option or fault specification""",
}
