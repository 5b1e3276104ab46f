import os

import pytest
import trustme

from tests.support import make_config, provision, provisioned_copy, start_hub, start_next_hop


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def next_hop():
    hop = start_next_hop()
    yield hop
    hop.controller.stop()


@pytest.fixture(scope="session")
def provisioned_home(tmp_path_factory, ca):
    """A data folder with schema, DKIM keys, units and officials (see tests.support)."""
    home = tmp_path_factory.mktemp("provisioned") / "home"
    home.mkdir()
    provision(make_config(home, ca))
    return home


@pytest.fixture
def hub_config(tmp_path, ca, next_hop, provisioned_home):
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    return make_config(home, ca, delivery={
        "mode": "relay", "relay_host": "127.0.0.1", "relay_port": next_hop.port, "relay_tls": "none"})


@pytest.fixture
def hub(hub_config, ca):
    running = start_hub(hub_config, ca)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def perl_verify(tmp_path_factory):
    """Debian's Perl Mail::DKIM as an independent verifier (skips when not installed)."""
    from tests.dkimcheck import perl_verifier
    return perl_verifier(tmp_path_factory.mktemp("zone"))


@pytest.fixture
def pg_url():
    url = os.environ.get("MAILHUB_TEST_DATABASE_URL")
    if not url:
        pytest.skip("MAILHUB_TEST_DATABASE_URL is not set (no PostgreSQL)")
    return url


@pytest.fixture
def pg_schema_url(pg_url):
    """A URL whose connections use a fresh PostgreSQL schema; dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
