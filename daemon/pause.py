"""``libmirror pause LIBRARY`` / ``libmirror resume LIBRARY``: stop and restart one library's syncing.

Like ``release-gate`` they never write the state store (the running service is its one writer): a pause
is a file in ``state_dir/control/`` (``daemon.control``) that the service's runner checks before every
pass, and that ``sync`` checks too. It stays until ``resume`` removes it, across restarts of the service.
A pass already running when the pause is asked for finishes; none starts after it.
"""

from __future__ import annotations

from daemon.config import Config, LibraryConfig
from daemon.control import ControlDir
from daemon.exit_codes import EXIT_OK
from daemon.state.lock import current_holder


def _service(config: Config) -> str | None:
    holder = current_holder(config.state_dir)
    if holder is None:
        return None
    return f"pid {holder.pid}" + (f", `libmirror {holder.command}`" if holder.command else "")


def pause_library(config: Config, library: LibraryConfig) -> int:
    control = ControlDir(config.state_dir)
    already = control.pause(library.name)
    if already is not None:
        print(f"{library.name}: already paused since {already.requested_at}; `libmirror resume {library.name}` ends it")
        return EXIT_OK
    path = control.request_pause(library.name)
    print(f"{library.name}: paused (until `libmirror resume {library.name}`, across restarts; request: {path}).")
    service = _service(config)
    if service is None:
        print("No libmirror process runs on this state store: neither the service nor `sync` will sync it.")
    else:
        print(
            f"The running service ({service}) runs no pass of it from its next poll "
            f"(within poll_interval = {library.poll_interval:g} s; a pass already running finishes); "
            "its log says `library_paused`."
        )
    return EXIT_OK


def resume_library(config: Config, library: LibraryConfig) -> int:
    if not ControlDir(config.state_dir).clear_pause(library.name):
        print(f"{library.name}: not paused; nothing to resume")
        return EXIT_OK
    print(f"{library.name}: resumed.")
    service = _service(config)
    if service is not None:
        print(
            f"The running service ({service}) syncs it again at its next poll "
            f"(within poll_interval = {library.poll_interval:g} s), starting with a full pass; "
            "its log says `library_resumed`."
        )
    return EXIT_OK
