"""A snapshot moved forward change by change is the same index as one loaded whole: every lookup the
evaluator reads (grants by pair, by holder, by resource; children; groups and members)."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from accessreview.authz.index import DirectoryIndex


def lookups(index: DirectoryIndex) -> dict:
    def as_sets(mapping):
        return {key: sorted(map(repr, values)) for key, values in mapping.items() if values}

    return {"grants": as_sets(index.grants), "grants_of": as_sets(index.grants_of),
            "grants_on_resource": as_sets(index.grants_on_resource), "children": as_sets(index.children),
            "groups_of": as_sets(index.groups_of), "members_of": as_sets(index.members_of),
            "principals": index.principals, "resources": index.resources, "grants_by_id": index.grants_by_id,
            "memberships": index.memberships, "revision": index.revision}


def test_an_index_moved_forward_equals_one_loaded_whole(app, client, portal):
    rng = random.Random(4)
    engine = app.extensions["authz"]
    engine.snapshot()
    users = [f"user:u{i}" for i in range(12)]
    for user in users:
        assert client.put(f"/v1/principals/{user}", json={"name": user}, headers=portal).status_code in (200, 201)
    for org in ("a", "b"):
        client.put(f"/v1/resources/organization/{org}", json={}, headers=portal)
        for p in range(3):
            client.put(f"/v1/resources/project/{org}{p}", json={"parent": f"organization:{org}"}, headers=portal)
            for d in range(3):
                client.put(f"/v1/resources/document/{org}{p}-{d}", json={"parent": f"project:{org}{p}"},
                           headers=portal)
    grant_ids = []
    for step in range(120):
        roll = rng.random()
        if roll < 0.45:
            answer = client.post("/v1/grants", headers=portal, json={
                "principal": rng.choice(users + ["group:g1", "group:g2"]) if step > 5 else rng.choice(users),
                "role": rng.choice(["viewer", "editor"]),
                "resource": f"project:{rng.choice('ab')}{rng.randrange(3)}"})
            if answer.status_code == 201:
                grant_ids.append(answer.get_json()["id"])
        elif roll < 0.65 and grant_ids:
            client.delete(f"/v1/grants/{grant_ids.pop(rng.randrange(len(grant_ids)))}", headers=portal)
        elif roll < 0.8:
            group = rng.choice(["group:g1", "group:g2"])
            client.put(f"/v1/principals/{group}", headers=portal,
                       json={"name": group, "members": rng.sample(users, rng.randrange(4))})
        else:  # a document moves to another project
            client.put(f"/v1/resources/document/a0-{rng.randrange(3)}", headers=portal,
                       json={"parent": f"project:{rng.choice('ab')}{rng.randrange(3)}"})
        if step % 10 == 0:
            moved = engine.refresh().index
            session = app.extensions["db"].session()
            try:
                loaded = DirectoryIndex.load(session, moved.revision)
            finally:
                session.close()
            assert lookups(moved) == lookups(loaded), f"after step {step}"


def test_a_replaced_snapshot_is_freed_without_the_cyclic_collector(app, client, portal):
    """The engine keeps its snapshots out of the cyclic collector (gc.freeze), so a snapshot that a
    catch-up replaces must go by reference counting alone, or every directory write would leak an
    index's worth of memory in every process."""
    import gc
    import weakref

    engine = app.extensions["authz"]
    client.put("/v1/principals/user:u1", json={"name": "u1"}, headers=portal)
    client.put("/v1/resources/organization/o1", json={}, headers=portal)
    assert client.put("/v1/resources/project/p1", json={"parent": "organization:o1"},
                      headers=portal).status_code in (200, 201)
    old = engine.refresh()
    assert not old.evaluator.check("user:u1", "read", "project:p1", datetime.now(timezone.utc)).allowed
    gone = [weakref.ref(old), weakref.ref(old.evaluator), weakref.ref(old.index)]
    del old
    gc.disable()
    try:
        assert client.post("/v1/grants", json={"principal": "user:u1", "role": "viewer", "resource": "project:p1"},
                           headers=portal).status_code == 201
        new = engine.refresh()
        assert new.evaluator.check("user:u1", "read", "project:p1", datetime.now(timezone.utc)).allowed
        assert [ref() for ref in gone] == [None, None, None]
    finally:
        gc.enable()


def test_a_groups_members_come_in_the_same_order_in_every_process(app, client, portal):
    """The population hash and the listings cover a group's members in order: an order taken from a
    set's iteration would differ from one process to the next (string hashes are seeded per process)."""
    members = [f"user:m{i:02d}" for i in range(30)]
    for member in members:
        client.put(f"/v1/principals/{member}", json={"name": member}, headers=portal)
    client.put("/v1/principals/group:inner", json={"name": "inner", "members": members[20:][::-1]}, headers=portal)
    client.put("/v1/principals/group:crowd", headers=portal,
               json={"name": "crowd", "members": ["group:inner", *members[:20][::-1]]})
    index = app.extensions["authz"].refresh().index
    session = app.extensions["db"].session()
    try:
        loaded = DirectoryIndex.load(session, index.revision)
    finally:
        session.close()
    expected = ["group:inner", *members[:20], *members[20:]]
    assert index.members("group:crowd") == loaded.members("group:crowd") == expected
