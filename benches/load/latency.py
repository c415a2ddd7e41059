"""Accept-to-delivered latency at a fixed offered rate.

Runs a receiver (answers 200, records when each message arrived) and a paced sender
(posts {"sent_ns": ...} messages to hookgate's outbound listener) in one process, so
both ends read one clock. Prints p50 and p99 in milliseconds.

usage: latency.py <outbound url> <receiver port> <rate per second> <seconds>
"""
import asyncio
import json
import sys
import time


async def receiver(port, latencies):
    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                sent = json.loads(body)["sent_ns"]
                latencies.append((time.monotonic_ns() - sent) / 1e6)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", port)


async def sender(url, rate, seconds, connections=8):
    host, port_path = url.split("//", 1)[1].split(":", 1)
    port, path = port_path.split("/", 1)
    total = int(rate * seconds)
    start = time.monotonic() + 0.2
    next_index = iter(range(total))

    async def connection():
        reader, writer = await asyncio.open_connection(host, int(port))
        for i in next_index:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = json.dumps({"sent_ns": time.monotonic_ns(), "pad": "x" * 1200}).encode()
            writer.write(
                b"POST /%s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (path.encode(), host.encode(), len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 202"), head
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return total


async def main():
    url, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    latencies = []
    server = await receiver(port, latencies)
    total = await sender(url, rate, seconds)
    deadline = time.monotonic() + 30
    while len(latencies) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    server.close()
    latencies.sort()
    if len(latencies) < total:
        print(f"only {len(latencies)} of {total} delivered", file=sys.stderr)
        sys.exit(1)
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    print(f"{p50:.2f} {p99:.2f}")


asyncio.run(main())
