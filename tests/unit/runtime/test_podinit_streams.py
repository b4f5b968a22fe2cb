"""pod-init's stream frames and requests (streams.h, pure C), compiled into a tiny driver.

The driver reads one command a line and prints what streams.h made of it, so the C parser is
tested as pod-init runs it (no Python re-implementation). The frame layout is also checked
against nestlab's own Python encoding of the header, byte for byte.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from nestlab.runtime import streamframes
from nestlab.runtime.initramfs import CFLAGS, SOURCE_DIR

DRIVER = r"""
#define SP_TEST
#include "streams.h"

static void hexin(const char *hex, unsigned char *out, size_t *len)
{
    *len = 0;
    for (; hex[0] && hex[1]; hex += 2)
        out[(*len)++] = (unsigned char)(sp_hex(hex[0]) * 16 + sp_hex(hex[1]));
}

int main(void)
{
    static char line[70000];
    static unsigned char bytes[70000];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *arg = strchr(line, ' ');
        arg = arg ? arg + 1 : line + strlen(line);
        size_t len;
        if (!strncmp(line, "header ", 7)) {
            struct sp_header h = {0, 0, 0};
            hexin(arg, bytes, &len);
            int r = sp_parse_header(bytes, len, &h);
            printf("%d %u %u %u\n", r, h.id, h.type, h.len);
        } else if (!strncmp(line, "put ", 4)) {
            unsigned id, type, n;
            sscanf(arg, "%u %u %u", &id, &type, &n);
            sp_put_header(bytes, id, (uint8_t)type, n);
            for (int i = 0; i < SP_HEADER; i++)
                printf("%02x", bytes[i]);
            printf("\n");
        } else if (!strncmp(line, "open ", 5) || !strcmp(line, "open")) {
            struct sp_open o;
            const char *why = "";
            if (sp_parse_open(arg, &o, &why) < 0) {
                printf("error %s\n", why);
                continue;
            }
            printf("kind=%d container=%s tty=%d in=%d port=%d argc=%d", o.kind,
                   o.container ? o.container : "-", o.tty, o.in, o.port, o.argc);
            for (int i = 0; i < o.argc; i++)
                printf(" [%s]", o.argv[i]);
            printf("\n");
        } else if (!strncmp(line, "resize ", 7)) {
            unsigned short cols = 0, rows = 0;
            int r = sp_parse_resize((const unsigned char *)arg, strlen(arg), &cols, &rows);
            printf("%d %u %u\n", r, cols, rows);
        } else if (!strncmp(line, "exit ", 5)) {
            int exited, code, sig;
            char text[32];
            sscanf(arg, "%d %d %d", &exited, &code, &sig);
            sp_exit_payload(text, sizeof text, exited, code, sig);
            printf("%s\n", text);
        }
        fflush(stdout);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    directory = tmp_path_factory.mktemp("streams")
    source = directory / "driver.c"
    source.write_text(DRIVER)
    binary = directory / "driver"
    flags = [f for f in CFLAGS if f not in ("-static", "-s")]  # pod-init's warnings, as errors
    subprocess.run(  # noqa: S603 (our compiler on our source)
        [cc, *flags, "-I", str(SOURCE_DIR), "-o", str(binary), str(source)], check=True, timeout=120
    )
    return binary


def ask(driver: Path, *commands: str) -> list[str]:
    result = subprocess.run(  # noqa: S603 (the driver built above)
        [str(driver)],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.splitlines()


def test_header_round_trip_matches_the_python_layout(driver: Path) -> None:
    packed = struct.pack(">IBI", 0x01020304, 18, 65536).hex()
    assert ask(driver, "put 16909060 18 65536", f"header {packed}") == [packed, "1 16909060 18 65536"]


def test_header_needs_nine_bytes_and_refuses_oversized_payloads(driver: Path) -> None:
    short = struct.pack(">IBI", 7, 2, 5).hex()[:-2]
    over = struct.pack(">IBI", 7, 2, 65537).hex()
    assert ask(driver, f"header {short}", f"header {over}") == ["0 0 0 0", "-1 7 2 65537"]


def test_exec_request_is_decoded(driver: Path) -> None:
    assert ask(driver, "open exec web 1 0 sh -c echo%20hi%25") == [
        "kind=0 container=web tty=1 in=0 port=0 argc=3 [sh] [-c] [echo hi%]"
    ]


def test_attach_and_port_requests(driver: Path) -> None:
    assert ask(driver, "open attach web 0 1", "open port 8080") == [
        "kind=1 container=web tty=0 in=1 port=0 argc=0",
        "kind=2 container=- tty=0 in=0 port=8080 argc=0",
    ]


@pytest.mark.parametrize(
    ("request_text", "why"),
    [
        ("", "empty request"),
        ("shell web", "unknown kind (exec, attach or port)"),
        ("exec", "no container name"),
        ("exec web 2 0 sh", "TTY and STDIN must be 0 or 1"),
        ("exec web 0 0", "no command"),
        ("attach web 0 0 sh", "attach takes no command"),
        ("port 0", "port must be one number from 1 to 65535"),
        ("port 65536", "port must be one number from 1 to 65535"),
        ("port 80x", "port must be one number from 1 to 65535"),
        ("port 80 81", "port must be one number from 1 to 65535"),
        ("exec web 0 0 " + " ".join(["a"] * 65), "more than 64 command arguments"),
    ],
)
def test_bad_requests_say_why(driver: Path, request_text: str, why: str) -> None:
    assert ask(driver, f"open {request_text}".rstrip()) == [f"error {why}"]


def test_resize_and_exit_payloads(driver: Path) -> None:
    assert ask(driver, "resize 120 40", "resize 120", "resize 70000 1", "exit 1 3 0", "exit 0 0 9") == [
        "0 120 40",
        "-1 0 0",
        "-1 0 0",
        "3 0",
        "137 9",
    ]


def test_requests_encoded_by_the_host_side_decode_to_the_same_words(driver: Path) -> None:
    argv = ("sh", "-c", "echo 'a b' 100% > /tmp/x\tdone", "", "héllo")
    exec_text = streamframes.exec_request("web-1", argv, tty=False, stdin=True).decode()
    attach_text = streamframes.attach_request("web-1", tty=True, stdin=False).decode()
    words = " ".join(f"[{a}]" for a in argv)
    assert ask(
        driver, f"open {exec_text}", f"open {attach_text}", f"open {streamframes.port_request(5432).decode()}"
    ) == [
        f"kind=0 container=web-1 tty=0 in=1 port=0 argc=5 {words}",
        "kind=1 container=web-1 tty=1 in=0 port=0 argc=0",
        "kind=2 container=- tty=0 in=0 port=5432 argc=0",
    ]
