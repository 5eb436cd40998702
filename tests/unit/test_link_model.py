"""The test server's modelled network link (used by `make bench`'s network section): the
bytes it serves are the file's, ranges and suffix ranges included (from the disk, or from the
copy kept in memory), and every byte goes through the shared bucket."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from support.servers import Link, RangeHTTPServer


@pytest.mark.parametrize("in_memory", [False, True])
def test_a_paced_link_serves_the_right_bytes(tmp_path, in_memory):
    data = bytes(range(256)) * 4096  # 1 MiB
    (tmp_path / "f.bin").write_bytes(data)
    link = Link(rtt=0.01, mbit=800, in_memory=in_memory)
    if in_memory:  # served from the copy read here: what is on the disk afterwards is not read
        assert link.preload(tmp_path) == len(data)
        (tmp_path / "f.bin").write_bytes(bytes(len(data)))
    with RangeHTTPServer(tmp_path, link=link) as srv:
        async def fetch_all():
            async with aiohttp.ClientSession() as s:
                async def get(headers):
                    async with s.get(f"{srv.url}/f.bin", headers=headers) as r:
                        return r.status, r.headers.get("Content-Range"), await r.read()

                return await asyncio.gather(get({}), get({"Range": "bytes=1000-70999"}),
                                            get({"Range": "bytes=-5000"}), get({"Range": "bytes=1048000-"}))

        (s0, _, whole), (s1, cr1, part), (s2, cr2, tail), (s3, _, end) = asyncio.run(fetch_all())
        log = srv.requests()
    assert (s0, s1, s2, s3) == (200, 206, 206, 206)
    assert whole == data and part == data[1000:71000] and tail == data[-5000:] and end == data[1048000:]
    assert cr1 == f"bytes 1000-70999/{len(data)}" and cr2 == f"bytes {len(data) - 5000}-{len(data) - 1}/{len(data)}"
    assert link.sent == len(data) + 70000 + 5000 + (len(data) - 1048000), "every byte went over the link"
    assert sorted(r.bytes for r in log) == sorted([len(data), 70000, 5000, len(data) - 1048000])
    assert all(r.arrived > 0 for r in log)
