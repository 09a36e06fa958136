"""One ``exec`` session over the Kubernetes WebSocket streaming protocol
(``v5``/``v4.channel.k8s.io``), shared by the embedded API server's ``pods/exec`` and the
kubelet API's ``/exec`` that a real kube-apiserver proxies to.

Each binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (one
``Status`` JSON with the exit code when the command ends), 4 resize (TTY size JSON) and, in
``v5`` only, 255 close (``[255, channel]``: the client ended that stream, which is how
``kubectl exec -i`` signals stdin EOF; ``v4`` has no way to say so). The command runs as the
node agent's ``exec_argv`` says: inside the container's namespaces, with its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import pty
import struct
import termios
from typing import Any, Protocol, runtime_checkable

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
READ_CHUNK = 32 * 1024


@runtime_checkable
class ExecBackend(Protocol):
    """What an exec needs from the node agent."""

    def exec_argv(
        self, namespace: str, pod: str, container: str, command: list[str]
    ) -> tuple[list[str], dict[str, str]]: ...


def exit_status(code: int) -> dict[str, Any]:
    """The error channel's Status for an exit code (what the kubelet sends)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


async def stream(
    request: web.Request, argv: list[str], env: dict[str, str], *, stdin: bool, tty: bool
) -> web.WebSocketResponse | None:
    """Upgrade ``request`` and run the command to its end; None when the request is no
    WebSocket upgrade of ours (the caller answers that with its own 400)."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        return None
    await ws.prepare(request)
    session = _Session(ws, ws.ws_protocol == PROTOCOLS[0])
    await session.run(argv, env, stdin=stdin, tty=tty)
    return ws


class _Session:
    """One exec: the process, its pipes (or pseudo-terminal) and the WebSocket between."""

    def __init__(self, ws: web.WebSocketResponse, v5: bool) -> None:
        self.ws = ws
        self.v5 = v5
        self.send_lock = asyncio.Lock()
        self.master: int | None = None  # the pty's master side when tty

    async def send(self, channel: int, data: bytes) -> None:
        async with self.send_lock:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await self.ws.send_bytes(bytes([channel]) + data)

    async def run(self, argv: list[str], env: dict[str, str], *, stdin: bool, tty: bool) -> None:
        try:
            proc = await self._spawn(argv, env, stdin=stdin, tty=tty)
        except OSError as exc:
            await self.send(ERROR, json.dumps(_start_failure(exc)).encode())
            await self.ws.close()
            return
        pumps = [asyncio.create_task(self._pump_out(proc, tty))]
        reader = asyncio.create_task(self._read_client(proc, stdin))
        try:
            code = await proc.wait()
            await asyncio.gather(*pumps)
            await self.send(ERROR, json.dumps(exit_status(_exit_code(code))).encode())
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if proc.returncode is None:  # the client went away: the command goes too
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if self.master is not None:
                os.close(self.master)
            await self.ws.close()

    async def _spawn(
        self, argv: list[str], env: dict[str, str], *, stdin: bool, tty: bool
    ) -> asyncio.subprocess.Process:
        if tty:
            master, slave = pty.openpty()
            self.master = master
            try:
                return await asyncio.create_subprocess_exec(
                    *argv,
                    env={"TERM": "xterm", **env},
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    start_new_session=True,  # the pty becomes its controlling terminal
                )
            finally:
                os.close(slave)
        return await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def _pump_out(self, proc: asyncio.subprocess.Process, tty: bool) -> None:
        if tty:
            await self._pump_pty()
            return
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(self._pump(proc.stdout, STDOUT), self._pump(proc.stderr, STDERR))

    async def _pump(self, stream: asyncio.StreamReader, channel: int) -> None:
        while chunk := await stream.read(READ_CHUNK):
            await self.send(channel, chunk)

    async def _pump_pty(self) -> None:
        """A tty's output is all stdout; EIO on the master means every slave fd is closed."""
        assert self.master is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await loop.run_in_executor(None, os.read, self.master, READ_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            await self.send(STDOUT, chunk)

    async def _read_client(self, proc: asyncio.subprocess.Process, stdin: bool) -> None:
        """stdin, resize and close messages from kubectl; a dropped client kills the command."""
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN and stdin:
                await self._write_stdin(proc, data)
            elif channel == RESIZE and self.master is not None:
                _resize(self.master, data)
            elif channel == CLOSE and self.v5 and data[:1] == bytes([STDIN]):
                self._close_stdin(proc)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def _write_stdin(self, proc: asyncio.subprocess.Process, data: bytes) -> None:
        if self.master is not None:
            await asyncio.get_running_loop().run_in_executor(None, os.write, self.master, data)
            return
        if proc.stdin is None or proc.stdin.is_closing():
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(data)
            await proc.stdin.drain()

    def _close_stdin(self, proc: asyncio.subprocess.Process) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")  # EOF on a terminal is ^D
        elif proc.stdin is not None:
            proc.stdin.close()


def _resize(master: int, data: bytes) -> None:
    try:
        size = json.loads(data)
        packed = struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0)
        fcntl.ioctl(master, termios.TIOCSWINSZ, packed)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        log.debug("ignored terminal resize %r: %s", data, exc)


def _start_failure(exc: OSError) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"failed to start the command: {exc}",
        "reason": "InternalError",
    }
