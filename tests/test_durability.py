"""Nothing accepted is lost: SIGKILL right after the 250s, then restart."""
from __future__ import annotations

import re
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from mailhub.db import make_engine
from mailhub.models import QueuedMessage, QueueRecipient
from tests.serve_process import ServeProcess
from tests.support import PASSWORD, message, provisioned_copy, write_config_file

pytestmark = pytest.mark.slow


def write_config(home: Path, next_hop_port: int, processes: int = 1) -> Path:
    return write_config_file(home, next_hop_port, server={"processes": processes})


def submit_burst(port: int, ca, sessions: int, per_session: int) -> list[str]:
    """Send messages over several TLS sessions at once; return the queue ids from the 250s."""
    import ssl

    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ids: list[str] = []
    lock = threading.Lock()

    def one_session(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.starttls(context=ctx)
            client.login("an@hcm.gov.vn", PASSWORD)
            for i in range(per_session):
                client.mail("an@hcm.gov.vn")
                client.rcpt("binh@hcm.gov.vn")
                code, reply = client.data(message(subject=f"Thư {n}-{i}"))
                assert code == 250, reply
                with lock:
                    ids.append(re.search(rb"queued as (\w+)", reply).group(1).decode())

    with ThreadPoolExecutor(sessions) as pool:
        for f in [pool.submit(one_session, n) for n in range(sessions)]:
            f.result()
    return ids


def test_sigkill_after_250_loses_nothing(tmp_path, ca, provisioned_home, next_hop):
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = write_config(home, next_hop.port)

    server = ServeProcess(config, "--only", "submission")
    try:
        ids = submit_burst(server.ports["submission"], ca, sessions=5, per_session=20)
    finally:
        server.kill()  # no chance to flush anything: only committed data survives
    assert len(ids) == 100 and len(set(ids)) == 100

    engine = make_engine(f"sqlite:///{home / 'mailhub.db'}")
    with engine.connect() as conn:
        stored = set(conn.execute(select(QueuedMessage.id)).scalars())
        waiting = conn.execute(select(QueueRecipient.state)).scalars().all()
    engine.dispose()
    assert set(ids) <= stored
    assert waiting.count("queued") == 100

    # after a restart with the delivery worker, every accepted message arrives once
    server = ServeProcess(config)
    try:
        got = next_hop.handler.wait_for(100, timeout=60)
    finally:
        server.stop()
    ids_seen = [re.search(rb"with ESMTPSA id (\w+)", data).group(1).decode() for _, _, data in got]
    assert sorted(ids_seen) == sorted(ids)


def test_several_front_ends_share_the_ports_and_a_separate_worker_delivers(
        tmp_path, ca, provisioned_home, next_hop):
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = write_config(home, next_hop.port, processes=2)
    server = ServeProcess(config, want=3)
    try:
        # two front ends with both listeners, and a third process that delivers (and serves HTTP)
        assert sorted(sorted(r) for r in server.roles.values()) == [
            ["delivery", "http"], ["submission", "submissions"], ["submission", "submissions"]]
        ids = submit_burst(server.ports["submission"], ca, sessions=6, per_session=5)
        got = next_hop.handler.wait_for(30, timeout=30)
    finally:
        server.stop()
    assert len(ids) == 30
    assert sorted(re.search(rb"with ESMTPSA id (\w+)", d).group(1).decode() for _, _, d in got) == sorted(ids)
