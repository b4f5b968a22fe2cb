/*
 * The pod stream protocol on virtio-serial port "nestlab.stream" (exec, attach, port-forward): the
 * pure part, frames and requests, with no I/O so that a tiny test binary can drive it
 * (tests/unit/runtime/test_podinit_streams.py). The I/O part (sessions, processes, sockets) is
 * streams.c and streamopen.c, #included at the end of podinit.c.
 *
 * Frame: 4-byte big-endian session id, 1-byte type, 4-byte big-endian payload length (<= 65536),
 * payload. Host -> pod: OPEN (payload: %XX-encoded tokens `exec CONTAINER TTY STDIN ARG...`,
 * `attach CONTAINER TTY STDIN` or `port PORT`), DATA, EOF, RESIZE (`COLS ROWS`), CLOSE.
 * Pod -> host: OPENED, ERROR (utf-8 message), STDOUT, STDERR, EXIT (`CODE SIGNAL`).
 */
#ifndef NESTLAB_STREAMS_H
#define NESTLAB_STREAMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef SP_TEST
#include <poll.h>
#include <sys/types.h>
#endif

#define SP_HEADER 9
#define SP_MAX_PAYLOAD 65536
#define SP_MAX_ARGS 64

enum sp_type {
	SP_OPEN = 1, SP_DATA = 2, SP_EOF = 3, SP_RESIZE = 4, SP_CLOSE = 5,
	SP_OPENED = 16, SP_ERROR = 17, SP_STDOUT = 18, SP_STDERR = 19, SP_EXIT = 20,
};

enum sp_kind { SP_EXEC, SP_ATTACH, SP_PORT };

struct sp_header {
	uint32_t id;
	uint8_t type;
	uint32_t len;
};

/* An OPEN request; its strings point into the (decoded in place) payload. */
struct sp_open {
	enum sp_kind kind;
	char *container;
	int tty, in;
	char *argv[SP_MAX_ARGS + 1];
	int argc;
	int port;
};

/* 1 with *h filled when a whole header is in buf, 0 when more bytes are needed, -1 when the
 * length is over the limit (the stream is out of step: nothing after it can be trusted). */
static int sp_parse_header(const unsigned char *buf, size_t avail, struct sp_header *h)
{
	if (avail < SP_HEADER)
		return 0;
	h->id = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	h->type = buf[4];
	h->len = (uint32_t)buf[5] << 24 | (uint32_t)buf[6] << 16 | (uint32_t)buf[7] << 8 | buf[8];
	return h->len > SP_MAX_PAYLOAD ? -1 : 1;
}

static void sp_put_header(unsigned char *buf, uint32_t id, uint8_t type, uint32_t len)
{
	buf[0] = (unsigned char)(id >> 24);
	buf[1] = (unsigned char)(id >> 16);
	buf[2] = (unsigned char)(id >> 8);
	buf[3] = (unsigned char)id;
	buf[4] = type;
	buf[5] = (unsigned char)(len >> 24);
	buf[6] = (unsigned char)(len >> 16);
	buf[7] = (unsigned char)(len >> 8);
	buf[8] = (unsigned char)len;
}

static int sp_hex(int ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
	       : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* The next space-separated token of *cursor, %XX-decoded in place; NULL at the end. */
static char *sp_token(char **cursor)
{
	char *s = *cursor, *in, *out;
	if (!s || !*s)
		return NULL;
	char *end = strchr(s, ' ');
	if (end) {
		*end = 0;
		*cursor = end + 1;
	} else {
		*cursor = s + strlen(s);
	}
	for (in = out = s; *in;) {
		int hi = in[0] == '%' ? sp_hex((unsigned char)in[1]) : -1;
		int lo = hi >= 0 ? sp_hex((unsigned char)in[2]) : -1;
		if (lo >= 0) {
			*out++ = (char)(hi * 16 + lo);
			in += 3;
		} else {
			*out++ = *in++;
		}
	}
	*out = 0;
	return s;
}

static int sp_flag(const char *t, int *flag)
{
	if (!t || (strcmp(t, "0") && strcmp(t, "1")))
		return -1;
	*flag = t[0] == '1';
	return 0;
}

/* Parse an OPEN payload (NUL-terminated, decoded in place); 0, or -1 with *why set. */
static int sp_parse_open(char *text, struct sp_open *o, const char **why)
{
	char *cursor = text, *kind = sp_token(&cursor), *t;
	memset(o, 0, sizeof *o);
	if (!kind)
		return *why = "empty request", -1;
	if (!strcmp(kind, "port")) {
		char *end;
		t = sp_token(&cursor);
		long port = t ? strtol(t, &end, 10) : 0;
		if (!t || *end || port < 1 || port > 65535 || sp_token(&cursor))
			return *why = "port must be one number from 1 to 65535", -1;
		o->kind = SP_PORT;
		o->port = (int)port;
		return 0;
	}
	if (strcmp(kind, "exec") && strcmp(kind, "attach"))
		return *why = "unknown kind (exec, attach or port)", -1;
	o->kind = kind[0] == 'e' ? SP_EXEC : SP_ATTACH;
	o->container = sp_token(&cursor);
	if (!o->container || !*o->container)
		return *why = "no container name", -1;
	if (sp_flag(sp_token(&cursor), &o->tty) < 0 || sp_flag(sp_token(&cursor), &o->in) < 0)
		return *why = "TTY and STDIN must be 0 or 1", -1;
	while ((t = sp_token(&cursor))) {
		if (o->kind == SP_ATTACH)
			return *why = "attach takes no command", -1;
		if (o->argc == SP_MAX_ARGS)
			return *why = "more than 64 command arguments", -1;
		o->argv[o->argc++] = t;
	}
	if (o->kind == SP_EXEC && (!o->argc || !*o->argv[0]))
		return *why = "no command", -1;
	o->argv[o->argc] = NULL;
	return 0;
}

/* A RESIZE payload `COLS ROWS`; 0, or -1 when malformed. */
static int sp_parse_resize(const unsigned char *payload, size_t len, unsigned short *cols, unsigned short *rows)
{
	char text[32];
	unsigned c, r;
	char extra;
	if (len >= sizeof text)
		return -1;
	memcpy(text, payload, len);
	text[len] = 0;
	if (sscanf(text, "%u %u%c", &c, &r, &extra) != 2 || c > 65535 || r > 65535)
		return -1;
	*cols = (unsigned short)c;
	*rows = (unsigned short)r;
	return 0;
}

/* The EXIT payload for a wait status: `CODE 0` when it exited, `128+SIG SIG` when killed. */
static int sp_exit_payload(char *buf, size_t size, int exited, int code, int sig)
{
	return exited ? snprintf(buf, size, "%d 0", code) : snprintf(buf, size, "%d %d", 128 + sig, sig);
}

#ifndef SP_TEST
/* The hooks podinit.c calls (streams.c, #included after probes.c). */
static void streams_open_port(void);
static int streams_pollfds(struct pollfd *fds, long long now);
static void streams_dispatch(struct pollfd *fds, int count);
static long long streams_wait(long long now, long long wait);
static void streams_reaped(pid_t pid, int status);
static int streams_may_drain(int container);
static void streams_tee(int container, const char *data, size_t len);
static void streams_container_exited(int container, int code, int sig);
static void streams_shutdown(void);
static int streams_directive(int container, const char *key, char *value);
static int streams_stdio(int container, int *out_r, int *out_w);
#endif

#endif
