from tests.conftest import World


def test_healthz_and_me(client, world: World, auth) -> None:
    assert client.get("/healthz").get_json()["status"] == "ok"
    me = client.get("/api/v1/auth/me", headers=auth.headers("m-insp")).get_json()
    assert me["role"] == "inspector" and me["department_id"] == str(world.market.id)
