/*
 * pod-init: PID 1 of a nestlab pod microVM (the CRX init + Spherelet Agent of a vSphere Pod).
 *
 * It mounts /proc, /sys and /dev, configures lo and eth0 from nestlab.* kernel parameters, reads
 * the pod description from the virtio disk whose serial is "nestlab-pod", gives every container a
 * fresh overlay (its read-only image disk under a writable upper on the ephemeral disk) and its
 * own pid and mount namespaces, chroots into it, writes the pod's /etc/resolv.conf and /etc/hosts
 * there (the files the kubelet mounts into every container), runs it, forwards its output to the
 * console as "[name] line", reports start/exit events to the host as JSON lines on the
 * virtio-serial port "nestlab.control", applies the restart policy, and powers the VM off when the
 * pod is done or the host writes "stop".
 *
 * Pod description (one directive per line, values %XX-encoded, see nestlab/runtime/poddesc.py):
 *   nestlab-pod 1 | name N | restart Never|OnFailure|Always | grace S | backoff MS
 *   hostname H | resolv FILE | hosts FILE   (pod-level; FILE is the whole file, %XX-encoded)
 *   container N | image SERIAL | arg A | env K=V | workdir D | user UID:GID | end
 *   volume NAME KIND | file NAME PATH MODE DATA (pod-level), mount NAME PATH ro|rw SUB: see volumes.c
 *   deadline S (pod-level), init 1 | probe KIND ... | hook poststart|prestop ...: see probes.h
 *   stdio STDIN ONCE TTY (container stdin, stdinOnce, tty: 0|1 each): see streamopen.c
 *
 * exec, attach and port-forward sessions arrive on the virtio-serial port "nestlab.stream": see
 * streams.h and streams.c.
 *
 * Built static with musl-gcc; no shell, no busybox, no dynamic allocation beyond fixed tables.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <limits.h>
#include <unistd.h>

#define MAX_CONTAINERS 16
#define MAX_ARGS 64
#define MAX_ENV 1024                 /* service links give 8 variables per Service of the namespace */
#define LINE_MAX_OUT 1024            /* longer output lines are split: the console is line-based */
#define DESC_MAX (8 * 1024 * 1024)   /* the description disk (ConfigMaps and Secrets in it) up to this size */
#define BACKOFF_CAP_MS 300000        /* kubelet's crash-loop back-off ceiling: five minutes */
#define CONTROL_NAME "nestlab.control"
#define DESC_SERIAL "nestlab-pod"
#define EPH_SERIAL "nestlab-eph"
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#include "probes.h"
#include "streams.h"

enum policy { NEVER, ON_FAILURE, ALWAYS };

struct container {
	char *name, *image, *workdir;
	char *argv[MAX_ARGS + 1], *envp[MAX_ENV + 2];
	int argc, envc;
	uid_t uid; gid_t gid;
	pid_t pid;                   /* running process, 0 when not running */
	int out;                     /* read end of its stdout/stderr pipe, -1 when closed */
	char buf[LINE_MAX_OUT]; size_t len;
	int restarts, last_code, done;
	long long restart_at_ms;     /* 0 = no restart scheduled */
	long backoff_ms;
	struct lifecycle lc;           /* probes.h: probes, hooks, init, kills */
};

static struct container pods[MAX_CONTAINERS];
static int npods;
static char *pod_name = "pod";
static char *pod_hostname, *resolv_conf, *hosts_file; /* NULL: the pod name / the image's own files */
static enum policy restart_policy = NEVER;
static long grace_s = 10, backoff_ms = 10000; /* kubelet defaults: 10 s back-off start */
static int control = -1;
static char desc[DESC_MAX + 1];

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pod-init: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

/* One JSON event line on the control port; names are DNS labels, so no escaping is needed. */
static void event(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || control < 0)
		return;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(control, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

static void mkdirs(const char *path)
{
	char tmp[512];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') { *p = 0; mkdir(tmp, 0755); *p = '/'; }
	mkdir(tmp, 0755);
}

static int mnt(const char *src, const char *dst, const char *type, unsigned long flags, const char *data)
{
	mkdirs(dst);
	if (mount(src, dst, type, flags, data) == 0)
		return 0;
	say("mount %s on %s (%s) failed: %s", src, dst, type, strerror(errno));
	return -1;
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t r;
	while (len < size - 1 && (r = read(fd, buf + len, size - 1 - len)) > 0)
		len += r;
	close(fd);
	buf[len] = 0;
	return (int)len;
}

/* A one-line sysfs attribute without its newline. */
static int read_value(const char *path, char *buf, size_t size)
{
	int len = read_file(path, buf, size);
	if (len >= 0)
		buf[strcspn(buf, "\n")] = 0;
	return len;
}

/* The /dev path of the virtio disk with this serial, or NULL. */
static const char *disk_by_serial(const char *serial)
{
	static char dev[300];
	char path[300], value[64];
	DIR *dir = opendir("/sys/block");
	struct dirent *d;
	const char *found = NULL;
	while (dir && (d = readdir(dir))) {
		if (strncmp(d->d_name, "vd", 2))
			continue;
		snprintf(path, sizeof path, "/sys/block/%s/serial", d->d_name);
		if (read_value(path, value, sizeof value) >= 0 && !strcmp(value, serial)) {
			snprintf(dev, sizeof dev, "/dev/%s", d->d_name);
			found = dev;
		}
	}
	if (dir)
		closedir(dir);
	return found;
}

static void open_control(void)
{
	char path[300], value[64];
	DIR *dir = opendir("/sys/class/virtio-ports");
	struct dirent *d;
	while (dir && (d = readdir(dir))) {
		snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", d->d_name);
		if (d->d_name[0] != '.' && read_value(path, value, sizeof value) >= 0 && !strcmp(value, CONTROL_NAME)) {
			snprintf(path, sizeof path, "/dev/%s", d->d_name);
			control = open(path, O_RDWR | O_CLOEXEC);
		}
	}
	if (dir)
		closedir(dir);
	if (control < 0)
		say("no virtio-serial port named %s: events go nowhere", CONTROL_NAME);
}

/* ---- network: lo always; eth0 from nestlab.ip=A.B.C.D/N and nestlab.gw=A.B.C.D ---- */

static int if_up(int sock, const char *ifname)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

static void set_addr(int sock, unsigned long req, const char *ifname, in_addr_t addr)
{
	struct ifreq ifr = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
	if (ioctl(sock, req, &ifr) < 0)
		say("%s: address ioctl failed: %s", ifname, strerror(errno));
}

static void setup_network(const char *cmdline)
{
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char ip[32] = "", gw[32] = "";
	const char *p;
	if (sock < 0)
		return;
	if (if_up(sock, "lo") < 0)
		say("lo: %s", strerror(errno));
	if ((p = strstr(cmdline, "nestlab.ip=")))
		sscanf(p + 11, "%31[0-9./]", ip);
	if ((p = strstr(cmdline, "nestlab.gw=")))
		sscanf(p + 11, "%31[0-9.]", gw);
	if (ip[0]) {
		char *slash = strchr(ip, '/');
		int prefix = slash ? atoi(slash + 1) : 24;
		if (slash)
			*slash = 0;
		set_addr(sock, SIOCSIFADDR, "eth0", inet_addr(ip));
		set_addr(sock, SIOCSIFNETMASK, "eth0", htonl(prefix ? ~0u << (32 - prefix) : 0));
		if (if_up(sock, "eth0") < 0)
			say("eth0: %s", strerror(errno));
		say("eth0 %s/%d", ip, prefix);
	}
	if (gw[0]) {
		struct rtentry rt = {0};
		struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
		struct sockaddr_in *gate = (struct sockaddr_in *)&rt.rt_gateway;
		struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
		dst->sin_family = gate->sin_family = mask->sin_family = AF_INET;
		gate->sin_addr.s_addr = inet_addr(gw);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		if (ioctl(sock, SIOCADDRT, &rt) < 0)
			say("default route via %s: %s", gw, strerror(errno));
	}
	close(sock);
}

/* ---- pod description ---- */

/* Percent-decode in place; returns the length (the data may hold NUL bytes). */
static size_t decode_len(char *s)
{
	char *out = s, *in = s;
	while (*in) {
		if (in[0] == '%' && in[1] && in[2]) {
			char hex[3] = {in[1], in[2], 0};
			*out++ = (char)strtol(hex, NULL, 16);
			in += 3;
		} else {
			*out++ = *in++;
		}
	}
	*out = 0;
	return (size_t)(out - s);
}

/* Percent-decode a text value in place (it ends at its first NUL). */
static char *decode(char *s)
{
	decode_len(s);
	return s;
}

#include "volumes.c"

static int parse_desc(char *text)
{
	struct container *c = NULL;
	int line_no = 0;
	for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *value = strchr(line, ' ');
		line_no++;
		if (value)
			*value++ = 0;
		else
			value = "";
		if (line_no == 1 && strcmp(line, "nestlab-pod"))
			return say("pod description: first line is not 'nestlab-pod 1'"), -1;
		if (!strcmp(line, "name")) pod_name = decode(value);
		else if (!strcmp(line, "restart"))
			restart_policy = !strcmp(value, "Always") ? ALWAYS : !strcmp(value, "OnFailure") ? ON_FAILURE : NEVER;
		else if (!strcmp(line, "grace")) grace_s = atol(value);
		else if (!strcmp(line, "backoff")) backoff_ms = atol(value);
		else if (!strcmp(line, "hostname")) pod_hostname = decode(value);
		else if (!strcmp(line, "resolv")) resolv_conf = decode(value);
		else if (!strcmp(line, "hosts")) hosts_file = decode(value);
		else if (!strcmp(line, "volume")) { if (volume_directive(value) < 0) return -1; }
		else if (!strcmp(line, "file")) { if (file_directive(value) < 0) return -1; }
		else if (!strcmp(line, "container")) {
			if (npods == MAX_CONTAINERS)
				return say("pod description: more than %d containers", MAX_CONTAINERS), -1;
			c = &pods[npods++];
			c->name = decode(value);
			c->workdir = "/";
			c->out = -1;
		} else if (lifecycle_directive(c, line, value)) {
			continue; /* probes.c: deadline, init, probe, hook */
		} else if (streams_directive(c ? (int)(c - pods) : -1, line, value)) {
			continue; /* streams.c: stdio (stdin, stdinOnce, tty) */
		} else if (!c) {
			continue; /* unknown pod-level directives are ignored: newer hosts may add some */
		} else if (!strcmp(line, "image")) c->image = decode(value);
		else if (!strcmp(line, "workdir")) c->workdir = decode(value);
		else if (!strcmp(line, "user")) sscanf(value, "%u:%u", &c->uid, &c->gid);
		else if (!strcmp(line, "arg") && c->argc < MAX_ARGS) c->argv[c->argc++] = decode(value);
		else if (!strcmp(line, "env") && c->envc < MAX_ENV) c->envp[c->envc++] = decode(value);
		else if (!strcmp(line, "mount")) { if (mount_directive((int)(c - pods), value) < 0) return -1; }
		else if (!strcmp(line, "end")) c = NULL;
	}
	for (int i = 0; i < npods; i++) {
		struct container *k = &pods[i];
		int has_path = 0;
		if (!k->image || !k->argc)
			return say("container %s: image and at least one arg are required", k->name), -1;
		for (int e = 0; e < k->envc; e++)
			has_path |= !strncmp(k->envp[e], "PATH=", 5);
		if (!has_path)
			k->envp[k->envc++] = DEFAULT_PATH;
		k->backoff_ms = backoff_ms;
	}
	return npods ? 0 : (say("pod description has no containers"), -1);
}

static int load_desc(void)
{
	const char *dev = disk_by_serial(DESC_SERIAL);
	if (!dev)
		return say("no virtio disk with serial %s", DESC_SERIAL), -1;
	if (read_file(dev, desc, sizeof desc) < 0)
		return say("%s: %s", dev, strerror(errno)), -1;
	return parse_desc(desc);
}

/* ---- containers ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void unmount_root(struct container *c)
{
	char path[256];
	/* proc, sys and dev inside it went away with the container's mount namespace. */
	snprintf(path, sizeof path, "/run/c/%s/root", c->name);
	umount2(path, MNT_DETACH);
	snprintf(path, sizeof path, "/eph/%s", c->name);
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* A fresh overlay for every (re)start, as the kubelet gives a restarted container a new layer. */
static int prepare_root(struct container *c)
{
	char lower[256], upper[256], work[256], root[256], opts[900];
	const char *dev = disk_by_serial(c->image);
	snprintf(lower, sizeof lower, "/run/c/%s/lower", c->name);
	snprintf(upper, sizeof upper, "/eph/%s/upper", c->name);
	snprintf(work, sizeof work, "/eph/%s/work", c->name);
	snprintf(root, sizeof root, "/run/c/%s/root", c->name);
	if (!dev)
		return say("container %s: no virtio disk with serial %s", c->name, c->image), -1;
	if (c->restarts == 0) {
		mkdirs(lower);
		if (mount(dev, lower, "erofs", MS_RDONLY, NULL) < 0 &&
		    mount(dev, lower, "ext4", MS_RDONLY, "noload") < 0)
			return say("container %s: %s is neither erofs nor ext4: %s", c->name, dev, strerror(errno)), -1;
	}
	mkdirs(upper);
	mkdirs(work);
	snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
	return mnt("overlay", root, "overlay", 0, opts);
}

struct launch { struct container *c; int out, in; }; /* in: stdin, -1 for /dev/null */

/*
 * One of the files the kubelet manages, written inside the container's root: called after chroot, so
 * a symlink in the image resolves inside the container (never into pod-init's root), and replaced
 * rather than followed. /etc is created when the image has none.
 */
static int write_etc(const char *path, const char *content)
{
	if (!content)
		return 0;
	size_t len = strlen(content), off = 0;
	mkdir("/etc", 0755);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	while (fd >= 0 && off < len) {
		ssize_t w = write(fd, content + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
	if (fd >= 0)
		close(fd);
	if (fd < 0 || off < len)
		return dprintf(2, "pod-init: writing %s: %s\n", path, strerror(errno)), -1;
	return 0;
}

/* Runs as PID 1 of the container's own pid and mount namespaces, then becomes the container. */
static int container_main(void *arg)
{
	struct launch *l = arg;
	struct container *c = l->c;
	char root[256], sub[300];
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	dup2(l->in >= 0 ? l->in : null < 0 ? l->out : null, 0);
	dup2(l->out, 1);
	dup2(l->out, 2);
	if (l->in == l->out)
		ioctl(0, TIOCSCTTY, 0); /* `tty: true`: the pty is its controlling terminal (streams.c) */
	snprintf(root, sizeof root, "/run/c/%s/root", c->name);
	mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	snprintf(sub, sizeof sub, "%s/proc", root);
	mnt("proc", sub, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL); /* this namespace's pids only */
	snprintf(sub, sizeof sub, "%s/sys", root);
	mnt("sysfs", sub, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
	snprintf(sub, sizeof sub, "%s/dev", root);
	mnt("devtmpfs", sub, "devtmpfs", MS_NOSUID, NULL);
	snprintf(sub, sizeof sub, "%s/dev/pts", root);
	mnt("/dev/pts", sub, NULL, MS_BIND, NULL); /* the pod's ptys (exec -t, tty: true) have names */
	if (mount_volumes((int)(c - pods), root) < 0)
		_exit(126);
	if (chroot(root) < 0 || chdir(c->workdir) < 0)
		dprintf(2, "pod-init: chroot %s / chdir %s: %s\n", root, c->workdir, strerror(errno)), _exit(126);
	if (write_etc("/etc/resolv.conf", resolv_conf) < 0 || write_etc("/etc/hosts", hosts_file) < 0)
		_exit(126);
	if (setgroups(0, NULL) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
		dprintf(2, "pod-init: user %u:%u: %s\n", c->uid, c->gid, strerror(errno)), _exit(126);
	environ = c->envp; /* musl's execvpe searches the caller's PATH, not the container's */
	execvp(c->argv[0], c->argv);
	dprintf(2, "pod-init: exec %s: %s\n", c->argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static void start(struct container *c)
{
	static char stack[64 * 1024]; /* the child's copy of it; no CLONE_VM, so it is never shared */
	int fds[2];
	c->restart_at_ms = 0;
	if (prepare_root(c) < 0 || pipe2(fds, O_CLOEXEC) < 0) {
		c->last_code = 128;
		c->done = 1;
		event("{\"event\":\"failed\",\"container\":\"%s\",\"reason\":\"rootfs\"}", c->name);
		return;
	}
	int in = streams_stdio((int)(c - pods), &fds[0], &fds[1]); /* streams.c: stdin, tty */
	struct launch l = {c, fds[1], in};
	pid_t pid = clone(container_main, stack + sizeof stack, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, &l);
	close(fds[1]);
	if (l.in >= 0 && l.in != l.out)
		close(l.in);
	if (pid < 0) {
		say("container %s: clone: %s", c->name, strerror(errno));
		close(fds[0]);
		unmount_root(c);
		c->last_code = 128;
		c->done = 1;
		event("{\"event\":\"failed\",\"container\":\"%s\",\"reason\":\"clone\"}", c->name);
		return;
	}
	c->pid = pid;
	c->out = fds[0];
	fcntl(c->out, F_SETFL, O_NONBLOCK);
	event("{\"event\":\"started\",\"container\":\"%s\",\"pid\":%d,\"restarts\":%d}", c->name, pid, c->restarts);
	lifecycle_started(c);
}

static void emit_line(struct container *c)
{
	printf("[%s] %.*s\n", c->name, (int)c->len, c->buf);
	fflush(stdout);
	c->len = 0;
}

/* Forward whatever the container wrote, a line at a time; at EOF the pipe is closed. */
static void drain(struct container *c)
{
	char chunk[512];
	ssize_t r;
	while (c->out >= 0 && (r = read(c->out, chunk, sizeof chunk)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			break;
		}
		streams_tee((int)(c - pods), chunk, (size_t)r); /* streams.c: attached sessions */
		for (ssize_t i = 0; i < r; i++) {
			if (chunk[i] == '\n' || c->len == sizeof c->buf)
				emit_line(c);
			if (chunk[i] != '\n')
				c->buf[c->len++] = chunk[i];
		}
	}
	if (c->len)
		emit_line(c);
	if (c->out >= 0)
		close(c->out);
	c->out = -1;
}

static void exited(struct container *c, int status, int stopping)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	/* The container ends with its main process, as a pid namespace would: no stragglers. */
	kill(-c->pid, SIGKILL);
	drain(c);
	if (c->out >= 0)
		close(c->out);
	c->out = -1;
	c->pid = 0;
	c->last_code = code;
	streams_container_exited((int)(c - pods), code, sig);
	event("{\"event\":\"exited\",\"container\":\"%s\",\"code\":%d,\"signal\":%d,\"restarts\":%d}",
	      c->name, code, sig, c->restarts);
	unmount_root(c);
	if (!stopping && wants_restart(c, code)) {
		c->restart_at_ms = now_ms() + c->backoff_ms;
		c->backoff_ms = c->backoff_ms * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : c->backoff_ms * 2;
		c->restarts++;
	} else {
		c->done = 1;
	}
	lifecycle_exited(c);
}

static void reap(int stopping)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0 && (lifecycle_reaped(pid, status), streams_reaped(pid, status), 1))
		for (int i = 0; i < npods; i++)
			if (pods[i].pid == pid)
				exited(&pods[i], status, stopping);
}

static void signal_all(int sig)
{
	for (int i = 0; i < npods; i++)
		if (pods[i].pid > 0)
			kill(-pods[i].pid, sig);
}

static void power_off(void)
{
	sync();
	unmount_volumes(); /* volumes.c: persistent volumes clean for their next host */
	umount2("/eph", MNT_DETACH);
	say("powering off");
	/* No ACPI in the microvm: a reset with `-no-reboot` is how the guest makes QEMU exit. */
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

#include "probes.c"
#include "streams.c"

/* Run containers until all are done (or the host says stop), then report the pod phase. */
static void supervise(void)
{
	struct pollfd fds[MAX_CONTAINERS + 2 + STREAM_FDS];
	sigset_t mask;
	int stopping = 0;
	long long stop_deadline = 0, control_quiet_until = 0;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	lifecycle_begin(); /* probes.c starts the init containers, then the others */
	for (;;) {
		int running = 0, pending = 0;
		long long now = now_ms(), next = lifecycle_tick(now, &stopping, &stop_deadline);
		for (int i = 0; i < npods; i++) {
			struct container *c = &pods[i];
			if (!c->pid && c->restart_at_ms && !stopping && c->restart_at_ms <= now)
				start(c);
			running += c->pid > 0;
			if (!c->pid && c->restart_at_ms && !stopping) {
				pending++;
				if (next < 0 || c->restart_at_ms < next)
					next = c->restart_at_ms;
			}
		}
		if (!running && (!pending || stopping))
			break;
		if (stopping && now >= stop_deadline) {
			signal_all(SIGKILL);
			stop_deadline = now + 1000;
		}
		int n = 0;
		fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		/* A port whose host end is closed reports POLLHUP forever: look again once a second. */
		int watch_control = control >= 0 && now >= control_quiet_until;
		fds[n++] = (struct pollfd){.fd = watch_control ? control : -1, .events = POLLIN};
		for (int i = 0; i < npods; i++)
			fds[n++] = (struct pollfd){.fd = streams_may_drain(i) ? pods[i].out : -1, .events = POLLIN};
		int nstreams = streams_pollfds(fds + n, now); /* streams.c: the stream port and its sessions */
		n += nstreams;
		long long wait = stopping ? stop_deadline - now : next < 0 ? -1 : next - now;
		if (!watch_control && control >= 0 && (wait < 0 || wait > 1000))
			wait = 1000;
		wait = streams_wait(now, wait);
		poll(fds, n, wait < 0 ? -1 : (int)(wait > 60000 ? 60000 : wait));
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof si) == sizeof si)
			if (si.ssi_signo == SIGTERM && !stopping)
				stopping = 1, stop_deadline = now_ms() + grace_s * 1000, stop_all();
		/* A closed host end polls POLLIN|POLLHUP (end of file): read what is left, then look again
		 * in a second rather than spinning on the end of file until the host comes back. */
		if (fds[1].revents & (POLLHUP | POLLERR))
			control_quiet_until = now_ms() + 1000;
		if (fds[1].revents & POLLIN) {
			if (control_input() && !stopping) { /* volumes.c: stop, or a volume's new generation */
				say("stop requested by the host");
				stopping = 1;
				stop_deadline = now_ms() + grace_s * 1000;
				stop_all(); /* probes.c: preStop, SIGTERM */
			}
		}
		for (int i = 0; i < npods; i++)
			if (fds[i + 2].revents)
				drain(&pods[i]);
		streams_dispatch(fds + n - nstreams, nstreams);
		reap(stopping);
	}
	streams_shutdown(); /* every exec'd command is killed with the pod */
	int failed = 0;
	for (int i = 0; i < npods; i++)
		failed |= pods[i].last_code != 0;
	report_done(failed); /* probes.c: DeadlineExceeded when activeDeadlineSeconds ended it */
}

int main(void)
{
	static char cmdline[4096];
	setvbuf(stdout, NULL, _IOLBF, 0);
	mnt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mnt("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mnt("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
	mnt("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	read_file("/proc/cmdline", cmdline, sizeof cmdline);
	mnt("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620"); /* exec -t */
	open_control();
	streams_open_port();
	event("{\"event\":\"init\",\"version\":1}");
	setup_network(cmdline);
	if (load_desc() == 0) {
		const char *eph = disk_by_serial(EPH_SERIAL);
		if (!eph || mnt(eph, "/eph", "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
			mnt("tmpfs", "/eph", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
		const char *hostname = pod_hostname ? pod_hostname : pod_name;
		sethostname(hostname, strlen(hostname));
		setup_volumes();
		supervise();
	} else {
		event("{\"event\":\"pod\",\"pod\":\"%s\",\"phase\":\"Failed\",\"reason\":\"description\"}", pod_name);
	}
	power_off();
	return 0;
}
