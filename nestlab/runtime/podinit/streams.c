/*
 * Exec, attach and port-forward inside the pod: the pod side of the Spherelet Agent's interactive
 * endpoint. The host multiplexes sessions over the virtio-serial port "nestlab.stream" (frames in
 * streams.h); this file runs them from pod-init's poll loop without ever blocking it.
 *
 * - exec: a forked runner enters the container (setns mnt+pid, chroot to /proc/PID/root, its
 *   workdir) and forks the command as the container's user with its env; the command is in the
 *   container's pid namespace, its own session (a pty as controlling terminal with TTY), stdio on
 *   pipes or the pty. The runner reports on a pipe: `P pid` (the command), `E message` (it could
 *   not start), `W status` (its wait status), so pod-init can kill it and send EXIT or ERROR.
 * - attach: the container's output (tee'd by drain()) and EXIT when its process ends.
 * - port: a non-blocking connect to 127.0.0.1:PORT (containers share the VM's network).
 *
 * Fixed tables, non-blocking fds and bounded buffers: output is only read while the port's output
 * buffer has room, and when a session's stdin buffer is full the port is not read until it drains
 * (backpressure: bytes are never dropped). #included at the end of podinit.c (it uses its globals);
 * what the host asks (frames in, OPEN, the runner) is streamopen.c, #included at the end.
 */

#define MAX_SESSIONS 32
#define STDIN_MAX (128 * 1024)                  /* per session, host -> process (fits a whole frame) */
#define OUT_MAX (1024 * 1024)                   /* all sessions, pod -> host */
#define IN_MAX (2 * (SP_HEADER + SP_MAX_PAYLOAD)) /* frames from the host */
#define READ_CHUNK (16 * 1024)                  /* one output frame at most */
#define CONTROL_RESERVE (16 * 1024)             /* kept free for OPENED/ERROR/EXIT frames */
#define LINGER_MS 2000          /* after the command ended: wait this long for its pipes' EOF */
#define ENTER_WAIT_MS 3000      /* a just-cloned container may not be in its root yet */
#define STREAM_NAME "nestlab.stream"
#define STREAM_FDS (1 + 4 * MAX_SESSIONS)

enum { S_FREE, S_OPEN, S_CLOSING }; /* S_CLOSING: abandoned, waiting to reap its runner */
enum { R_PORT, R_OUT, R_ERR, R_IN, R_REPORT };

struct session {
	int state;
	uint32_t id;
	enum sp_kind kind;
	int container, tty;
	int out, err, in;         /* for a pty or a socket, in == out (one fd) */
	int report;               /* exec: the runner's report pipe */
	pid_t runner, group;      /* exec: the runner, the command (its own process group) */
	int reaped, have_status, wstatus;
	char error[256];          /* exec: why the command could not start */
	int in_eof, connecting;
	int shut, half;           /* port: shutdown(SHUT_WR) done; the peer's EOF seen (EXIT sent) */
	long long linger_until;   /* exec: EXIT at the latest; port after the peer's EOF: release */
	size_t in_len;
	unsigned char inbuf[STDIN_MAX];
};

static struct session sessions[MAX_SESSIONS];
static int stream_port = -1;
static long long port_quiet_until;
static unsigned char port_in[IN_MAX], port_out[OUT_MAX];
static size_t port_in_len, port_out_off, port_out_len;
static int port_in_blocked, tee_dropped;
static struct { short session, role; } pmap[STREAM_FDS];
static char open_text[SP_MAX_PAYLOAD + 1];
/* streamopen.c: what the host asks (frames in, sessions opened) */
static void process_input(void);
static void read_port(void);
static void host_gone(void);

/* A container's own stdin/tty (`stdio STDIN ONCE TTY`): what attach -i writes to. */
static struct stdio {
	int in, once, tty;
	int fd;                   /* pod-init's end of its stdin: pipe write end or pty master; -1 */
} stdio[MAX_CONTAINERS] = {[0 ... MAX_CONTAINERS - 1] = {.fd = -1}};

static void streams_open_port(void)
{
	char path[300], value[64];
	DIR *dir = opendir("/sys/class/virtio-ports");
	struct dirent *d;
	while (dir && (d = readdir(dir))) {
		snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", d->d_name);
		if (d->d_name[0] != '.' && read_value(path, value, sizeof value) >= 0 && !strcmp(value, STREAM_NAME)) {
			snprintf(path, sizeof path, "/dev/%s", d->d_name);
			stream_port = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		}
	}
	if (dir)
		closedir(dir);
	if (stream_port < 0)
		say("no virtio-serial port named %s: no exec, attach or port-forward", STREAM_NAME);
}

/* ---- output to the host ---- */

static size_t out_free(void)
{
	return OUT_MAX - port_out_len;
}

/* Room for n bytes at the end of the output buffer, compacting it when needed; NULL when full. */
static unsigned char *out_reserve(size_t n)
{
	if (OUT_MAX - port_out_off - port_out_len < n && port_out_off) {
		memmove(port_out, port_out + port_out_off, port_out_len);
		port_out_off = 0;
	}
	return OUT_MAX - port_out_off - port_out_len >= n ? port_out + port_out_off + port_out_len : NULL;
}

static void send_frame(uint32_t id, uint8_t type, const void *data, size_t len)
{
	unsigned char *p = out_reserve(SP_HEADER + len);
	if (!p)
		return (void)say("stream port: output buffer full, frame for session %u dropped", id);
	sp_put_header(p, id, type, (uint32_t)len);
	if (len)
		memcpy(p + SP_HEADER, data, len);
	port_out_len += SP_HEADER + len;
}

static void send_text(uint32_t id, uint8_t type, const char *fmt, ...)
{
	char text[300];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	send_frame(id, type, text, n < 0 ? 0 : n >= (int)sizeof text ? sizeof text - 1 : (size_t)n);
}

static void flush_port(void)
{
	/* Never write while the host's end is closed: QEMU would throttle the port for a write that
	 * fails and may never lift it after the host reconnects (the new host knows none of these
	 * sessions anyway; dispatch aborts them when it sees the hang-up). */
	struct pollfd hup = {.fd = stream_port, .events = POLLOUT};
	if (port_out_len && stream_port >= 0 && poll(&hup, 1, 0) == 1 && (hup.revents & POLLHUP)) {
		port_out_len = port_out_off = 0;
		return;
	}
	while (port_out_len && stream_port >= 0) {
		ssize_t w = write(stream_port, port_out + port_out_off, port_out_len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0) { /* the host is gone: nobody will read these */
			port_out_len = 0;
			break;
		}
		port_out_off += (size_t)w;
		port_out_len -= (size_t)w;
	}
	port_out_off = port_out_len ? port_out_off : 0;
}

/* ---- sessions ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static struct session *find_session(uint32_t id)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].state == S_OPEN && sessions[i].id == id)
			return &sessions[i];
	return NULL;
}

/* Close its fds; a runner not yet reaped keeps the slot (S_CLOSING) until reap() sees it. */
static void release(struct session *s)
{
	if (s->in == s->out)
		s->in = -1;
	close_fd(&s->in);
	close_fd(&s->out);
	close_fd(&s->err);
	if (s->kind == SP_EXEC && s->runner > 0 && !s->reaped) {
		s->state = S_CLOSING;
		return;
	}
	close_fd(&s->report);
	s->state = S_FREE;
}

static void kill_command(struct session *s)
{
	if (s->group > 0) {
		kill(-s->group, SIGKILL);
		kill(s->group, SIGKILL); /* before its setsid() it is not a group leader yet */
	}
}

/* The runner's report lines: `P pid`, `E message`, `W status`. */
static void read_report(struct session *s)
{
	char buf[1024];
	ssize_t r;
	while (s->report >= 0 && (r = read(s->report, buf, sizeof buf - 1)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0)
			break;
		buf[r] = 0;
		for (char *save, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			if (line[0] == 'P' && line[1] == ' ')
				s->group = atoi(line + 2);
			else if (line[0] == 'E' && line[1] == ' ')
				snprintf(s->error, sizeof s->error, "%s", line + 2);
			else if (line[0] == 'W' && line[1] == ' ')
				s->wstatus = atoi(line + 2), s->have_status = 1;
		}
		if (s->state == S_CLOSING)
			kill_command(s);
	}
	close_fd(&s->report);
}

/* The host abandons the session (CLOSE), or the pod or the host end goes away. */
static void session_close(struct session *s)
{
	if (s->kind == SP_ATTACH && s->in >= 0 && stdio[s->container].once && !stdio[s->container].tty)
		close_fd(&stdio[s->container].fd); /* stdinOnce: the first client's disconnect closes it */
	if (s->kind == SP_EXEC && s->runner > 0 && !s->reaped) {
		read_report(s);
		kill_command(s); /* no group yet: read_report() kills it when `P` arrives */
	}
	release(s);
}

static void abort_all(void)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].state == S_OPEN)
			session_close(&sessions[i]);
	port_in_len = 0;
	port_in_blocked = 0;
}

/* The exec'd command ended and its output is read (or lingers too long): EXIT or ERROR. */
static void finish_exec(struct session *s, long long now)
{
	char text[32];
	if (s->state != S_OPEN || !s->reaped || ((s->out >= 0 || s->err >= 0) && now < s->linger_until))
		return;
	if (s->error[0]) {
		send_text(s->id, SP_ERROR, "%s", s->error);
	} else {
		int st = s->wstatus;
		int n = sp_exit_payload(text, sizeof text, WIFEXITED(st), WIFEXITED(st) ? WEXITSTATUS(st) : 0,
		                        WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		send_frame(s->id, SP_EXIT, text, (size_t)n);
	}
	release(s);
}

/* Write what the host sent to the process's stdin or the socket; EOF once it is all written. */
static void pump_in(struct session *s)
{
	while (s->in >= 0 && s->in_len && !s->connecting) {
		ssize_t w = s->kind == SP_PORT ? send(s->in, s->inbuf, s->in_len, MSG_NOSIGNAL)
		                               : write(s->in, s->inbuf, s->in_len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0) { /* the reader is gone: nothing will ever read these bytes */
			s->in_len = 0;
			if (s->half) {
				release(s);
				return;
			}
			if (s->in != s->out)
				close_fd(&s->in);
			return;
		}
		memmove(s->inbuf, s->inbuf + w, s->in_len - (size_t)w);
		s->in_len -= (size_t)w;
	}
	if (s->in >= 0 && !s->in_len && s->in_eof) {
		if (s->kind == SP_PORT && s->half) {
			shutdown(s->in, SHUT_WR);
			release(s); /* both directions are done */
			return;
		}
		if (s->kind == SP_PORT)
			shutdown(s->in, SHUT_WR), s->shut = 1;
		else if (s->in != s->out)
			close_fd(&s->in);
		if (s->kind == SP_ATTACH && stdio[s->container].once && !stdio[s->container].tty)
			close_fd(&stdio[s->container].fd); /* stdinOnce: closed until the container restarts */
		s->in_eof = 0;
	}
}

/* Read the process's (or socket's) output into frames, a few chunks at a time for fairness. */
static void read_side(struct session *s, int role)
{
	int *fd = role == R_ERR ? &s->err : &s->out;
	for (int i = 0; i < 4 && *fd >= 0 && s->state == S_OPEN; i++) {
		unsigned char *p = out_free() >= SP_HEADER + READ_CHUNK + CONTROL_RESERVE
		                       ? out_reserve(SP_HEADER + READ_CHUNK) : NULL;
		if (!p)
			return;
		ssize_t r = read(*fd, p + SP_HEADER, READ_CHUNK);
		if (r > 0) {
			sp_put_header(p, s->id, role == R_ERR ? SP_STDERR : SP_STDOUT, (uint32_t)r);
			port_out_len += SP_HEADER + (size_t)r;
			continue;
		}
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		/* EOF; EIO from a pty master once every slave is closed; a reset socket */
		if (s->kind == SP_PORT) {
			send_text(s->id, SP_EXIT, "0 0");
			if (r == 0 && !s->shut) {
				/* The peer half-closed (nc does at its stdin's EOF): what the host sent before it
				 * saw EXIT still goes to the socket, until the host's EOF or LINGER_MS. */
				s->half = 1;
				s->linger_until = now_ms() + LINGER_MS;
				return;
			}
			release(s);
			return;
		}
		if (s->in == *fd)
			s->in = -1;
		close_fd(fd);
	}
}

static void connected(struct session *s)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(s->out, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err) {
		send_text(s->id, SP_ERROR, "%s", go_error(err));
		release(s);
		return;
	}
	s->connecting = 0;
	send_frame(s->id, SP_OPENED, NULL, 0);
	pump_in(s);
}

/* ---- hooks for podinit.c ---- */

static int streams_pollfds(struct pollfd *fds, long long now)
{
	int n = 0, room = out_free() >= SP_HEADER + READ_CHUNK + CONTROL_RESERVE;
	if (stream_port < 0)
		return 0;
	if (port_in_blocked)
		process_input();
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		short out_events = 0;
		if (s->state == S_OPEN) {
			if (s->out >= 0 && room && !s->connecting && !s->half)
				out_events |= POLLIN;
			if (s->out >= 0 && s->in == s->out && (s->in_len || s->connecting))
				out_events |= POLLOUT;
			if (out_events)
				pmap[n].session = (short)i, pmap[n].role = R_OUT,
				fds[n++] = (struct pollfd){.fd = s->out, .events = out_events};
			if (s->err >= 0 && room)
				pmap[n].session = (short)i, pmap[n].role = R_ERR,
				fds[n++] = (struct pollfd){.fd = s->err, .events = POLLIN};
			if (s->in >= 0 && s->in != s->out && s->in_len)
				pmap[n].session = (short)i, pmap[n].role = R_IN,
				fds[n++] = (struct pollfd){.fd = s->in, .events = POLLOUT};
		}
		if (s->state != S_FREE && s->report >= 0)
			pmap[n].session = (short)i, pmap[n].role = R_REPORT,
			fds[n++] = (struct pollfd){.fd = s->report, .events = POLLIN};
	}
	short events = (short)((!port_in_blocked && port_in_len < IN_MAX ? POLLIN : 0) | (port_out_len ? POLLOUT : 0));
	pmap[n].session = -1, pmap[n].role = R_PORT;
	/* A port whose host end is closed reports POLLHUP forever: look again once a second. */
	fds[n++] = (struct pollfd){.fd = now >= port_quiet_until ? stream_port : -1, .events = events};
	return n;
}

static void streams_dispatch(struct pollfd *fds, int count)
{
	long long now = now_ms();
	for (int k = 0; k < count; k++) {
		struct session *s = pmap[k].session >= 0 ? &sessions[pmap[k].session] : NULL;
		short ev = fds[k].revents;
		if (!s || !ev)
			continue;
		if (pmap[k].role == R_REPORT) {
			read_report(s);
			continue;
		}
		if (s->state != S_OPEN)
			continue;
		if (pmap[k].role == R_OUT && s->connecting) {
			connected(s);
		} else if (pmap[k].role == R_OUT || pmap[k].role == R_ERR) {
			if ((ev & POLLOUT) || (pmap[k].role == R_OUT && s->in == s->out && (ev & POLLERR)))
				pump_in(s);
			if (ev & (POLLIN | POLLHUP | POLLERR))
				read_side(s, pmap[k].role);
		} else {
			pump_in(s);
		}
	}
	short port_ev = count ? fds[count - 1].revents : 0;
	if (port_ev & POLLIN)
		read_port();
	else if (port_ev & (POLLHUP | POLLERR))
		host_gone();
	for (int i = 0; i < MAX_SESSIONS; i++) {
		if (sessions[i].state == S_OPEN && sessions[i].kind == SP_EXEC)
			finish_exec(&sessions[i], now);
		else if (sessions[i].state == S_OPEN && sessions[i].half && now >= sessions[i].linger_until)
			release(&sessions[i]);
	}
	flush_port();
}

static long long streams_wait(long long now, long long wait)
{
	long long until = -1;
	if (stream_port >= 0 && now < port_quiet_until)
		until = port_quiet_until;
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].state == S_OPEN && (sessions[i].reaped || sessions[i].half) &&
		    (until < 0 || sessions[i].linger_until < until))
			until = sessions[i].linger_until;
	if (until < 0)
		return wait;
	until = until > now ? until - now : 0;
	return wait < 0 || until < wait ? until : wait;
}

static void streams_reaped(pid_t pid, int status)
{
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->state == S_FREE || s->kind != SP_EXEC || s->runner != pid || s->reaped)
			continue;
		s->reaped = 1;
		read_report(s);
		close_fd(&s->report);
		if (!s->have_status)
			s->wstatus = status; /* the runner itself was killed */
		if (s->state == S_CLOSING) {
			s->state = S_FREE;
			return;
		}
		s->linger_until = now_ms() + LINGER_MS;
		finish_exec(s, now_ms());
		flush_port();
		return;
	}
}

/* drain() reads a container's output only while every attached session has room for it. */
static int streams_may_drain(int container)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].state == S_OPEN && sessions[i].kind == SP_ATTACH && sessions[i].container == container)
			return out_free() >= 4 * READ_CHUNK + CONTROL_RESERVE;
	return 1;
}

static void streams_tee(int container, const char *data, size_t len)
{
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->state != S_OPEN || s->kind != SP_ATTACH || s->container != container)
			continue;
		if (out_free() < SP_HEADER + len + CONTROL_RESERVE) {
			if (!tee_dropped++)
				say("stream port: the host does not keep up: attach output dropped");
			continue;
		}
		send_frame(s->id, SP_STDOUT, data, len);
	}
}

static void streams_container_exited(int container, int code, int sig)
{
	char text[32];
	if (!stdio[container].tty)
		close_fd(&stdio[container].fd); /* a pty master is c->out: drain() closes it */
	stdio[container].fd = -1;
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->state != S_OPEN || s->kind != SP_ATTACH || s->container != container)
			continue;
		int n = sp_exit_payload(text, sizeof text, !sig, code, sig);
		send_frame(s->id, SP_EXIT, text, (size_t)n);
		release(s);
	}
	flush_port();
}

/* The pod is done: kill every exec'd command and give the host what output is left. */
static void streams_shutdown(void)
{
	abort_all();
	for (int tries = 0; port_out_len && tries < 10; tries++) {
		struct pollfd p = {.fd = stream_port, .events = POLLOUT};
		if (poll(&p, 1, 100) <= 0 || !(p.revents & POLLOUT))
			break;
		flush_port();
	}
}

#include "streamopen.c"
