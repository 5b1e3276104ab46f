"""The relay on PostgreSQL: the same pipeline, the queue and ledger in a real server."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, select

from mailhub.models import QueueRecipient, UsageEvent
from tests.support import PASSWORD, make_config, message, provision, start_hub

pytestmark = pytest.mark.postgres




def test_concurrent_sessions_are_stored_and_delivered_on_postgresql(tmp_path, ca, next_hop, pg_schema_url):
    config = make_config(tmp_path, ca, database={"url": pg_schema_url}, delivery={
        "mode": "relay", "relay_host": "127.0.0.1", "relay_port": next_hop.port, "relay_tls": "none"})
    provision(config)
    hub = start_hub(config, ca)
    try:
        def session(n: int) -> int:
            with hub.connect() as client:
                for i in range(10):
                    assert client.sendmail("an@hcm.gov.vn", ["binh@hcm.gov.vn", "x@example.org"],
                                           message(subject=f"PG {n}-{i}")) == {}
            return 10

        with ThreadPoolExecutor(5) as pool:
            assert sum(pool.map(session, range(5))) == 50
        got = next_hop.handler.wait_for(50, timeout=30)
        assert len(got) == 50
    finally:
        hub.stop()
    engine = create_engine(pg_schema_url)
    with engine.connect() as conn:
        states = conn.execute(select(QueueRecipient.state, func.count())
                              .group_by(QueueRecipient.state)).all()
        events = conn.execute(select(func.count(), func.sum(UsageEvent.recipients_external))
                              .where(UsageEvent.kind == "email")).one()
    engine.dispose()
    assert dict(states) == {"delivered": 100}
    assert tuple(events) == (50, 50)
    assert PASSWORD  # the officials logged in with the provisioned password
