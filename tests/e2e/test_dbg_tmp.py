from tests.e2e.test_cliniko import *
def test_dbg(tmp_path, clinic):
    mirror = mirror_for(tmp_path, clinic)
    mirror.sync()
    api = clinic.api
    pid = sorted(local_by_patient(mirror))[0]
    folder = folder_of(mirror, pid)
    names = sorted(p.name for p in folder.iterdir())
    print("NAMES", names)
    (folder / names[0]).write_bytes(b"edited locally\n")
    result = mirror.sync(check=None)
    for e in mirror.events(result):
        if e["event"] in ("action", "action_failed", "action_unsupported", "pass", "action_replanned"): print(e)
    print(api.by_patient()[pid].keys())
