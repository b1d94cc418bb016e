// SPDX-License-Identifier: GPL-2.0
/*
 * kh-agent: the kharness guest agent.
 *
 * Runs inside the guest (busybox initramfs) and performs the system calls shell cannot do
 * exactly: ioctl with a binary payload, and one read() or write() with exact bytes. One
 * operation per invocation; the result is ONE line of space-separated key=value pairs on
 * stdout, binary data in lowercase hex.
 *
 * docs/protocol.md specifies every command and its reply; kharness/agent_client.py builds the
 * commands and parses the replies on the host. The summary below is for reading this file.
 *
 *   kh-agent ioctl PATH REQUEST_HEX IN_HEX OUT_LEN   ret=N errno=NAME|0 out=HEX
 *   kh-agent write PATH DATA_HEX                     ret=N errno=NAME|0
 *   kh-agent read PATH COUNT                         ret=N errno=NAME|0 data=HEX
 *   kh-agent session PATH MODE OP...                 one line per step (see below)
 *   kh-agent hold PATH MODE DIR                      ret=0 pid=N (a server holding PATH open)
 *   kh-agent gpio-chips                              one line per /dev/gpiochipN
 *   kh-agent gpio-line CHIP LINE in|0|1              ret=0 errno=0 value=V (GPIO uAPI v2)
 *   kh-agent dmesg-since [NAME]                      the kernel log since the previous call
 *   kh-agent health                                  taint, log since the last look, modules, chardevs
 *   kh-agent run ID SCRIPT_B64 MAX [STDIN]           one command of the channel protocol
 *   kh-agent recv SIZE PATH                          SIZE bytes of base64 from stdin, decoded into PATH
 *   kh-agent restored EPOCH SEED_HEX                 set up a guest restored from a snapshot
 *   kh-agent insmod FILE [PARAM...]                  load a module, as busybox's insmod
 *   kh-agent rmmod NAME...                           unload modules, as busybox's rmmod
 *   kh-agent cat PATH...                             as cat
 *   kh-agent udev-settle                             udevadm settle, when udev has work
 *   kh-agent unpack                                  a newc cpio on stdin into the cwd, as cpio -idmu
 *   kh-agent version                                 kh-agent 4
 *
 * redirect is write as a shell's `printf '%s' DATA > PATH` opens the file (created 0666 & umask
 * and truncated), with the same one write() and reply line: the file check kinds' writes, the
 * same in every guest (busybox's echo names a failed write's errno, dash's says "I/O error").
 *
 * dmesg-since prints the raw kernel log lines (<level>[time] text, as `dmesg -r`) logged since
 * the previous call with the same NAME ("health" by default): the cursor, in
 * /tmp/.kh.dmesg.cursor.NAME, is the last line seen, because line counts break when the ring
 * buffer wraps and a line's timestamped text does not; a cursor that fell out of the buffer
 * prints everything.
 *
 * restored proves that the guest's timers run (a 1 ms sleep: a guest whose timers stalled never
 * returns from it; on powerpc it first restarts the decrementer, see wake_decrementer), sets the clock to EPOCH, mixes SEED into the entropy pool and makes /kh, the
 * directory the modules are delivered to. It prints nothing; on failure it exits 1 with a message.
 *
 * insmod, rmmod and cat are there for the guests driven over SSH: in a Debian guest the tools are
 * dynamic binaries (kmod's insmod and rmmod load libcrypto, libzstd...), and each exec of one
 * costs 40-150 ms under TCG; these are the same system calls in one static process. They print
 * busybox's messages (`insmod: can't insert 'FILE': MESSAGE`, `rmmod: can't unload module 'NAME':
 * MESSAGE`) and exit 1 on failure: the harness reads the errno back from MESSAGE and finds the
 * step of a chain that failed by the file or module it names, the same in every guest. A
 * compressed module is decompressed by the kernel when it can (/sys/module/compression names
 * the format it takes), else by the guest's own insmod, exec'ed in our place.
 *
 * health is what the harness reads after every phase, in one process: four sections separated by
 * lines "@@KH@@": /proc/sys/kernel/tainted, `dmesg-since health`, the names of the loaded
 * modules, and "MAJOR NAME" of each character device in /proc/devices.
 *
 * run is the guest half of one `run` request of the command channel (docs/protocol.md specifies
 * the protocol): it decodes the script, runs it with sh from / with stdin on /dev/null, and
 * writes the framed reply (KHO stdout, KHR stderr, each capped at MAX bytes and base64-encoded,
 * then KHE and the exit status) in one write. One process instead of the half-dozen a shell
 * needs for the same, which is most of a command's cost under TCG.
 *
 * recv is the guest half of a `put` request: the SIZE bytes of base64 that follow the request
 * line on the command channel, read in large reads (a shell's `read` takes one byte per system
 * call, the slowest part of a transfer under TCG) and decoded into PATH, the stdin of the
 * command that follows. It never reads past SIZE: the next request follows on the same tty.
 *
 * A session opens PATH once (MODE r, w or rw) and runs its steps on that one open file, the
 * way a program would: w:HEX (write), r:N (read up to N bytes), s:N (seek to N), i:REQ:IN:LEN
 * (ioctl; IN may be =VALUE), again (open PATH a second time in this process, then close that),
 * other (open PATH from another process meanwhile), close, open. Every step prints
 *   step=K op=NAME ret=N errno=NAME|0 [data=HEX]
 * (step 0 is the first open). `hold` is a session driven one step at a time: it makes the
 * FIFOs DIR/in and DIR/out, forks a server that keeps PATH open, and answers each step line
 * written to DIR/in with its reply line in DIR/out, until a `close` step.
 *
 * IN_HEX "-" is an empty payload; with OUT_LEN 0 too, ioctl gets the integer 0 as its
 * argument (for _IO requests). IN "=VALUE" (decimal with an optional sign, or 0x hex; OUT_LEN
 * 0) passes that integer itself as the argument: ioctl(fd, REQ, 5). Exit status: 0 when the
 * operation was attempted (its result is in the line), 2 on bad usage, 3 when PATH cannot be
 * opened (the line is open_errno=NAME).
 */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <dirent.h>
#include <linux/gpio.h>
#include <linux/random.h>
#include <unistd.h>

#define MAX_LEN (1UL << 24)

/* finit_module()'s flag for a compressed module file (Linux 5.17); older headers lack it */
#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

static const struct {
	int num;
	const char *name;
} errnames[] = {
	{ EPERM, "EPERM" },	{ ENOENT, "ENOENT" },	{ EINTR, "EINTR" },
	{ EIO, "EIO" },		{ ENXIO, "ENXIO" },	{ E2BIG, "E2BIG" },
	{ EBADF, "EBADF" },	{ EAGAIN, "EAGAIN" },	{ ENOMEM, "ENOMEM" },
	{ EACCES, "EACCES" },	{ EFAULT, "EFAULT" },	{ EBUSY, "EBUSY" },
	{ EEXIST, "EEXIST" },	{ ENODEV, "ENODEV" },	{ EINVAL, "EINVAL" },
	{ ENFILE, "ENFILE" },	{ EMFILE, "EMFILE" },	{ ENOTTY, "ENOTTY" },
	{ EFBIG, "EFBIG" },	{ ENOSPC, "ENOSPC" },	{ ESPIPE, "ESPIPE" },
	{ EROFS, "EROFS" },	{ EPIPE, "EPIPE" },	{ EDOM, "EDOM" },
	{ ERANGE, "ERANGE" },	{ ENOSYS, "ENOSYS" },	{ ENODATA, "ENODATA" },
	{ ETIMEDOUT, "ETIMEDOUT" }, { EOVERFLOW, "EOVERFLOW" },
	{ EOPNOTSUPP, "EOPNOTSUPP" }, { ENOTSUP, "ENOTSUP" },	/* same number on Linux */
};

/* The name of an errno value: "0", a name from the table, else "E<number>". */
static const char *errname(int e)
{
	static char buf[16];
	size_t i;

	if (e == 0)
		return "0";
	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].num == e)
			return errnames[i].name;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

static void usage(const char *why)
{
	fprintf(stderr, "kh-agent: %s\n"
		"usage: kh-agent ioctl PATH REQUEST_HEX IN_HEX|-|=VALUE OUT_LEN\n"
		"       kh-agent write PATH DATA_HEX\n"
		"       kh-agent redirect PATH DATA_HEX\n"
		"       kh-agent read PATH COUNT\n"
		"       kh-agent session PATH r|w|rw STEP...\n"
		"       kh-agent hold PATH r|w|rw DIR\n"
		"       kh-agent gpio-chips\n"
		"       kh-agent gpio-line CHIP LINE in|0|1\n"
		"       kh-agent insmod FILE [PARAM...]\n"
		"       kh-agent rmmod NAME...\n"
		"       kh-agent cat PATH...\n"
		"       kh-agent version\n", why);
	exit(2);
}

/* A decimal length in [0, MAX_LEN]; bad usage otherwise. */
static size_t parse_len(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > MAX_LEN)
		usage("bad length");
	return (size_t)v;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode hex ("-" is empty) into a new buffer of at least min bytes, zero-filled past the data. */
static unsigned char *parse_hex(const char *s, size_t min, size_t *len)
{
	size_t n = strcmp(s, "-") == 0 ? 0 : strlen(s);
	size_t i, size;
	unsigned char *buf;

	if (n % 2 != 0 || n / 2 > MAX_LEN)
		usage("bad hex payload");
	*len = n / 2;
	size = *len > min ? *len : min;
	buf = calloc(size ? size : 1, 1);
	if (buf == NULL) {
		fprintf(stderr, "kh-agent: out of memory\n");
		exit(2);
	}
	for (i = 0; i < *len; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			usage("bad hex payload");
		buf[i] = (unsigned char)(hi << 4 | lo);
	}
	return buf;
}

static void print_hex(const unsigned char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", buf[i]);
}

static int open_or_exit(const char *path, int flags)
{
	int fd = open(path, flags | O_NOCTTY, 0666);   /* the mode: for redirect's O_CREAT */

	/* ioctl: a node we may not write to can still take ioctls read-only. */
	if (fd < 0 && flags == O_RDWR && (errno == EACCES || errno == EPERM || errno == EISDIR))
		fd = open(path, O_RDONLY | O_NOCTTY);
	if (fd < 0) {
		printf("open_errno=%s\n", errname(errno));
		exit(3);
	}
	return fd;
}

/*
 * An ioctl argument passed by value: IN is "=VALUE", decimal with an optional sign or 0x hex,
 * and fits the target's unsigned long (or long, when negative); OUT_LEN must be 0.
 */
static unsigned long parse_arg(const char *in, size_t out_len)
{
	const char *p = in + 1;
	unsigned long long v, max = (unsigned long)-1;
	int neg = 0, base = 10;
	char *end;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	if (hexval(*p) < 0 || (base == 10 && hexval(*p) > 9))
		usage("bad by-value argument (=VALUE: decimal or 0x hex)");
	errno = 0;
	v = strtoull(p, &end, base);
	if (neg)
		max = ((unsigned long)-1 >> 1) + 1ULL;
	if (*end != '\0' || errno != 0 || v > max)
		usage("by-value argument out of range");
	if (out_len != 0)
		usage("a by-value argument has no output: OUT_LEN must be 0");
	return neg ? (unsigned long)(0 - v) : (unsigned long)v;
}

static void do_ioctl(const char *path, const char *req_hex, const char *in_hex, const char *out_s)
{
	size_t out_len = parse_len(out_s), in_len;
	int by_value = in_hex[0] == '=';
	unsigned long arg = by_value ? parse_arg(in_hex, out_len) : 0;
	unsigned char *buf = parse_hex(by_value ? "-" : in_hex, out_len > 8 ? out_len : 8, &in_len);
	unsigned long req;
	char *end;
	int fd, ret, err;

	errno = 0;
	req = strtoul(req_hex, &end, 16);
	if (*req_hex == '\0' || *req_hex == '-' || *end != '\0' || errno != 0)
		usage("bad request number");
	fd = open_or_exit(path, O_RDWR);
	errno = 0;
	if (by_value || (in_len == 0 && out_len == 0))
		ret = ioctl(fd, req, arg);
	else
		ret = ioctl(fd, req, buf);
	err = ret < 0 ? errno : 0;
	printf("ret=%d errno=%s out=", ret, errname(err));
	print_hex(buf, out_len);
	putchar('\n');
	close(fd);
	free(buf);
}

static void do_write(const char *path, const char *data_hex, int flags)
{
	size_t len;
	unsigned char *buf = parse_hex(data_hex, 0, &len);
	int fd = open_or_exit(path, flags);
	ssize_t ret = write(fd, buf, len);
	int err = ret < 0 ? errno : 0;

	printf("ret=%ld errno=%s\n", (long)ret, errname(err));
	close(fd);
	free(buf);
}

static void do_read(const char *path, const char *count_s)
{
	size_t count = parse_len(count_s);
	unsigned char *buf = malloc(count ? count : 1);
	int fd, err;
	ssize_t ret;

	if (buf == NULL) {
		fprintf(stderr, "kh-agent: out of memory\n");
		exit(2);
	}
	fd = open_or_exit(path, O_RDONLY);
	ret = read(fd, buf, count);
	err = ret < 0 ? errno : 0;
	printf("ret=%ld errno=%s data=", (long)ret, errname(err));
	if (ret > 0)
		print_hex(buf, (size_t)ret);
	putchar('\n');
	close(fd);
	free(buf);
}

/* --- sessions: several steps on one open file ------------------------------------------- */

static int mode_flags(const char *mode)
{
	if (strcmp(mode, "r") == 0)
		return O_RDONLY;
	if (strcmp(mode, "w") == 0)
		return O_WRONLY;
	if (strcmp(mode, "rw") == 0)
		return O_RDWR;
	usage("MODE is r, w or rw");
	return -1;
}

/* Run one step on *fd (opened from path with flags); print its reply line to out. */
static void session_step(FILE *out, int k, const char *op, const char *path, int flags, int *fd)
{
	unsigned char *buf = NULL;
	long ret = 0;
	int err = 0;
	size_t n = 0, out_len = 0;
	const char *name = op;

	errno = 0;
	if (strncmp(op, "w:", 2) == 0) {
		name = "write";
		buf = parse_hex(op + 2, 0, &n);
		ret = write(*fd, buf, n);
	} else if (strncmp(op, "r:", 2) == 0) {
		name = "read";
		n = parse_len(op + 2);
		buf = calloc(n ? n : 1, 1);
		ret = buf ? read(*fd, buf, n) : -1;
		out_len = ret > 0 ? (size_t)ret : 0;
	} else if (strncmp(op, "s:", 2) == 0) {
		name = "seek";
		ret = lseek(*fd, (off_t)parse_len(op + 2), SEEK_SET);
	} else if (strncmp(op, "i:", 2) == 0) {
		char req_s[32], in_s[2 * 4096 + 2], len_s[16];
		unsigned long req, arg;

		name = "ioctl";
		if (sscanf(op + 2, "%31[^:]:%8193[^:]:%15s", req_s, in_s, len_s) != 3)
			usage("ioctl step is i:REQUEST_HEX:IN_HEX|-:OUT_LEN");
		req = strtoul(req_s, NULL, 16);
		out_len = parse_len(len_s);
		arg = in_s[0] == '=' ? parse_arg(in_s, out_len) : 0;
		buf = parse_hex(in_s[0] == '=' ? "-" : in_s, out_len > 8 ? out_len : 8, &n);
		ret = (in_s[0] == '=' || (n == 0 && out_len == 0)) ? ioctl(*fd, req, arg) : ioctl(*fd, req, buf);
		if (ret < 0)
			out_len = 0;
	} else if (strcmp(op, "again") == 0) {
		int fd2 = open(path, flags | O_NOCTTY);

		ret = fd2 < 0 ? -1 : 0;
		if (fd2 >= 0)
			close(fd2);
	} else if (strcmp(op, "other") == 0) {
		int pipefd[2], status = 0, child_err = 0;
		pid_t pid;

		if (pipe(pipefd) != 0 || (pid = fork()) < 0) {
			ret = -1;
		} else if (pid == 0) {
			int fd2 = open(path, flags | O_NOCTTY);
			int e = fd2 < 0 ? errno : 0;

			if (write(pipefd[1], &e, sizeof(e)) != sizeof(e))
				_exit(1);
			_exit(0);	/* closes fd2 */
		} else {
			close(pipefd[1]);
			if (read(pipefd[0], &child_err, sizeof(child_err)) != sizeof(child_err))
				child_err = EIO;
			close(pipefd[0]);
			waitpid(pid, &status, 0);
			ret = child_err ? -1 : 0;
			errno = child_err;
		}
	} else if (strcmp(op, "close") == 0) {
		ret = *fd < 0 ? 0 : close(*fd);
		*fd = -1;
	} else if (strcmp(op, "open") == 0) {
		if (*fd >= 0)
			close(*fd);
		*fd = open(path, flags | O_NOCTTY);
		ret = *fd < 0 ? -1 : 0;
	} else {
		usage("unknown session step");
	}
	err = ret < 0 ? errno : 0;
	fprintf(out, "step=%d op=%s ret=%ld errno=%s", k, name, ret, errname(err));
	if (out_len || strcmp(name, "read") == 0 || strcmp(name, "ioctl") == 0) {
		size_t i;

		fputs(" data=", out);
		for (i = 0; i < out_len; i++)
			fprintf(out, "%02x", buf[i]);
	}
	fputc('\n', out);
	fflush(out);
	free(buf);
}

static void do_session(const char *path, const char *mode, int nops, char **ops)
{
	int flags = mode_flags(mode), k;
	int fd = -1;

	session_step(stdout, 0, "open", path, flags, &fd);
	for (k = 0; k < nops; k++)
		session_step(stdout, k + 1, ops[k], path, flags, &fd);
	if (fd >= 0)
		close(fd);
}

/* A server holding PATH open; steps arrive one per line on DIR/in, replies go to DIR/out. */
static void do_hold(const char *path, const char *mode, const char *dir)
{
	int flags = mode_flags(mode), fd, k = 1;
	char in_path[512], out_path[512], line[2 * 4096 + 64];
	pid_t pid;

	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	if ((mkfifo(in_path, 0600) != 0 && errno != EEXIST) ||
	    (mkfifo(out_path, 0600) != 0 && errno != EEXIST)) {
		printf("ret=-1 errno=%s\n", errname(errno));
		return;
	}
	fd = open_or_exit(path, flags);
	fflush(stdout);
	pid = fork();
	if (pid != 0) {
		printf("ret=%d errno=%s pid=%d\n", pid < 0 ? -1 : 0, errname(pid < 0 ? errno : 0), (int)pid);
		return;
	}
	setsid();
	/* Let go of the caller's stdout: whoever waits for its end must not wait for the server. */
	{
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
	for (;;) {
		FILE *in = fopen(in_path, "r"), *out;
		int done;

		if (in == NULL)
			_exit(1);
		if (fgets(line, sizeof(line), in) == NULL) {
			fclose(in);
			continue;
		}
		fclose(in);
		line[strcspn(line, "\n")] = '\0';
		out = fopen(out_path, "w");
		if (out == NULL)
			_exit(1);
		done = strcmp(line, "close") == 0;
		session_step(out, k++, line, path, flags, &fd);
		fclose(out);
		if (done)
			_exit(0);
	}
}

/* --- GPIO character device, uAPI v2 ----------------------------------------------------- */

static void do_gpio_chips(void)
{
	DIR *d = opendir("/dev");
	struct dirent *e;

	if (d == NULL) {
		printf("ret=-1 errno=%s\n", errname(errno));
		return;
	}
	while ((e = readdir(d)) != NULL) {
		struct gpiochip_info info;
		char p[300];
		int fd;

		if (strncmp(e->d_name, "gpiochip", 8) != 0)
			continue;
		snprintf(p, sizeof(p), "/dev/%s", e->d_name);
		fd = open(p, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, &info) == 0)
			printf("chip=%s name=%s label=%s lines=%u\n", p, info.name,
			       info.label[0] ? info.label : "-", info.lines);
		close(fd);
	}
	closedir(d);
}

/* Request LINE of CHIP as an input ("in") or an output at 0/1, then read its value back. */
static void do_gpio_line(const char *chip, const char *line_s, const char *what)
{
	struct gpio_v2_line_request req;
	struct gpio_v2_line_values vals;
	int fd = open_or_exit(chip, O_RDWR), ret;

	memset(&req, 0, sizeof(req));
	req.offsets[0] = (unsigned int)parse_len(line_s);
	req.num_lines = 1;
	strncpy(req.consumer, "kh-agent", sizeof(req.consumer) - 1);
	if (strcmp(what, "in") == 0) {
		req.config.flags = GPIO_V2_LINE_FLAG_INPUT;
	} else if (strcmp(what, "0") == 0 || strcmp(what, "1") == 0) {
		req.config.flags = GPIO_V2_LINE_FLAG_OUTPUT;
		req.config.num_attrs = 1;
		req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
		req.config.attrs[0].attr.values = what[0] == '1';
		req.config.attrs[0].mask = 1;
	} else {
		usage("gpio-line wants in, 0 or 1");
	}
	if (ioctl(fd, GPIO_V2_GET_LINE_IOCTL, &req) < 0) {
		printf("ret=-1 errno=%s\n", errname(errno));
		close(fd);
		return;
	}
	memset(&vals, 0, sizeof(vals));
	vals.mask = 1;
	ret = ioctl(req.fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &vals);
	printf("ret=%d errno=%s value=%d\n", ret, errname(ret < 0 ? errno : 0), (int)(vals.bits & 1));
	close(req.fd);
	close(fd);
}

/* --- dmesg-since --------------------------------------------------------------------------- */

/* All of a file (NUL-terminated, length in *len), or NULL. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *buf;
	ssize_t r;

	if (fd < 0)
		return NULL;
	buf = malloc(cap + 1);
	while (buf && (r = read(fd, buf + n, cap - n)) > 0) {
		n += (size_t)r;
		if (n == cap) {
			char *b = realloc(buf, cap * 2 + 1);

			if (b == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
			cap *= 2;
		}
	}
	close(fd);
	if (buf) {
		buf[n] = 0;
		*len = n;
	}
	return buf;
}

/* All of p, across short writes and signals; -1 (errno set) if a write() failed. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void do_dmesg_since(const char *name)
{
	char cur_path[128], *log, *cur, *from, *last, *p;
	size_t cur_len = 0, line_len;
	int size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0), n, fd;

	if (size <= 0)
		size = 1 << 20;
	log = malloc((size_t)size + 1);
	if (log == NULL)
		exit(1);
	n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, size);
	if (n < 0) {
		fprintf(stderr, "kh-agent: klogctl: %s\n", strerror(errno));
		exit(1);
	}
	log[n] = 0;
	snprintf(cur_path, sizeof(cur_path), "/tmp/.kh.dmesg.cursor.%s", name);
	from = log;
	cur = slurp(cur_path, &cur_len);
	if (cur && cur_len > 0) {
		if (cur[cur_len - 1] == '\n')
			cur[--cur_len] = 0;
		/* the last whole line equal to the cursor */
		for (p = log; p < log + n; ) {
			char *eol = memchr(p, '\n', (size_t)(log + n - p));

			line_len = eol ? (size_t)(eol - p) : (size_t)(log + n - p);
			if (line_len == cur_len && memcmp(p, cur, cur_len) == 0)
				from = eol ? eol + 1 : log + n;
			p += line_len + 1;
		}
	}
	free(cur);
	write_all(1, from, (size_t)(log + n - from));
	/* the new cursor: the last line of the log */
	last = log + n;
	if (last > log && last[-1] == '\n')
		last--;
	p = last;
	while (p > log && p[-1] != '\n')
		p--;
	fd = open(cur_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		write_all(fd, p, (size_t)(last - p));
		write_all(fd, "\n", 1);
		close(fd);
	}
	free(log);
}

/* --- insmod, rmmod, cat: busybox's, without exec'ing a dynamic binary --------------------- */

/*
 * busybox's words for the errors of init_module (its modutils' moderror()), which the harness
 * reads back (kharness/checks/fields.py). Only the kernel's errors take them: a file that cannot
 * be opened is strerror's, as busybox says it.
 */
static const char *moderror(int err)
{
	switch (err) {
	case ENOEXEC:
		return "invalid module format";
	case ENOENT:
		return "unknown symbol in module, or unknown parameter";
	case ESRCH:
		return "module has wrong symbol version";
	case ENOSYS:
		return "kernel does not support requested operation";
	}
	return strerror(err);
}

static void insmod_fail(const char *file, const char *msg)
{
	fprintf(stderr, "insmod: can't insert '%s': %s\n", file, msg);
	exit(1);
}

/* The compression of a module file by its magic, named as /sys/module/compression names it;
 * NULL for none (an ELF file, or anything else: the kernel judges that). */
static const char *module_compression(int fd)
{
	unsigned char m[6];
	ssize_t n = pread(fd, m, sizeof(m), 0);

	if (n >= 6 && memcmp(m, "\xfd" "7zXZ\0", 6) == 0)
		return "xz";
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		return "gzip";
	if (n >= 4 && memcmp(m, "\x28\xb5\x2f\xfd", 4) == 0)
		return "zstd";
	return NULL;
}

/* Whether finit_module() decompresses format itself (CONFIG_MODULE_DECOMPRESS: one format). */
static int kernel_decompresses(const char *format)
{
	size_t len = 0;
	char *have = slurp("/sys/module/compression", &len);
	int yes;

	if (have == NULL)
		return 0;
	have[strcspn(have, "\n")] = 0;
	yes = strcmp(have, format) == 0;
	free(have);
	return yes;
}

/*
 * argv: FILE [PARAM...]. The parameters go to the kernel joined by single spaces, as busybox
 * joins them (the kernel's parser splits them again, honouring double quotes).
 */
/*
 * udev-settle: `udevadm settle` costs ~0.15 s in a Debian guest under TCG (a dynamic binary and
 * a round with udevd), and after most loads udev has nothing to do: loading a module emits one
 * uevent of its own (add@/module/NAME), and only a module that makes devices emits more. So the
 * first insmod of a load notes the kernel's uevent sequence number in SETTLE_STATE (where udevd
 * runs), each one that loads counts itself there, and udev-settle runs udevadm settle only when
 * more uevents came than modules were loaded (or when it cannot tell: no note, no counter).
 */
#define SETTLE_STATE "/run/kh-uevents"	/* (root's; gone at reboot) */

static long long uevent_seqnum(void)
{
	char buf[32];
	int fd = open("/sys/kernel/uevent_seqnum", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtoll(buf, NULL, 10);
}

static int settle_read(long long *base, long long *count)
{
	FILE *f = fopen(SETTLE_STATE, "r");
	int ok;

	if (f == NULL)
		return 0;
	ok = fscanf(f, "%lld %lld", base, count) == 2;
	fclose(f);
	return ok;
}

static void settle_write(long long base, long long count)
{
	FILE *f = fopen(SETTLE_STATE, "w");

	if (f != NULL) {
		fprintf(f, "%lld %lld\n", base, count);
		fclose(f);
	}
}

static void do_udev_settle(void)
{
	long long base, count, now = uevent_seqnum();
	int noted = settle_read(&base, &count);

	unlink(SETTLE_STATE);
	if (access("/run/udev/control", F_OK) != 0)
		return;		/* no udevd: nothing to wait for */
	if (noted && now >= 0 && now - base <= count)
		return;		/* only the modules' own uevents */
	execlp("udevadm", "udevadm", "settle", "--timeout=30", (char *)NULL);
	fprintf(stderr, "kh-agent: udevadm: %s\n", strerror(errno));
	exit(1);
}

static void do_insmod(int argc, char **argv)
{
	const char *file = argv[0], *zip;
	size_t len = 1;
	char *opts, *image;
	int i, fd, flags = 0, err;
	long long base = -1, count = 0;

	for (i = 1; i < argc; i++)
		len += strlen(argv[i]) + 1;
	opts = calloc(len, 1);
	if (opts == NULL)
		insmod_fail(file, strerror(ENOMEM));
	for (i = 1; i < argc; i++) {
		if (i > 1)
			strcat(opts, " ");
		strcat(opts, argv[i]);
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		insmod_fail(file, strerror(errno));
	zip = module_compression(fd);
	if (zip != NULL) {
		if (!kernel_decompresses(zip)) {
			/* The guest's own insmod decompresses it in user space: let it. */
			close(fd);
			execvp("insmod", argv - 1);	/* argv - 1: "insmod" FILE PARAM..., ours */
			fprintf(stderr, "kh-agent: %s is %s-compressed: this kernel cannot decompress it "
				"and no insmod runs (%s)\n", file, zip, strerror(errno));
			insmod_fail(file, moderror(ENOEXEC));
		}
		flags = MODULE_INIT_COMPRESSED_FILE;
	}
	/* The load's first insmod, where udevd runs: see udev-settle. */
	if (!settle_read(&base, &count) && access("/run/udev/control", F_OK) == 0)
		settle_write(base = uevent_seqnum(), count = 0);
	err = syscall(SYS_finit_module, fd, opts, flags) == 0 ? 0 : errno;
	close(fd);
	/* A kernel without finit_module (before 3.8) takes the image itself. */
	if (err == ENOSYS && zip == NULL) {
		image = slurp(file, &len);
		if (image == NULL)
			insmod_fail(file, strerror(errno));
		err = syscall(SYS_init_module, image, (unsigned long)len, opts) == 0 ? 0 : errno;
		free(image);
	}
	free(opts);
	if (err != 0)
		insmod_fail(file, moderror(err));
	if (base >= 0)
		settle_write(base, count + 1);
}

/*
 * As busybox's rmmod: NAME may be a file name (dir/snd-dummy.ko is the module snd_dummy), and
 * the first module that does not unload ends it. O_NONBLOCK: a module in use fails with EAGAIN
 * at once instead of waiting for its users to go.
 */
static void do_rmmod(int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *base = strrchr(argv[i], '/');
		char name[64];
		size_t k;

		base = base ? base + 1 : argv[i];
		for (k = 0; k < sizeof(name) - 1 && base[k] != '\0' && base[k] != '.'; k++)
			name[k] = base[k] == '-' ? '_' : base[k];
		name[k] = '\0';
		if (syscall(SYS_delete_module, name, O_NONBLOCK) != 0) {
			fprintf(stderr, "rmmod: can't unload module '%s': %s\n", name, strerror(errno));
			exit(1);
		}
	}
}

/* One file to stdout; 0, or -1 with the message printed. A failed write to stdout ends it all. */
static int cat_one(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), err;
	ssize_t r;

	if (fd < 0) {
		fprintf(stderr, "cat: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (write_all(1, buf, (size_t)r) < 0) {
			fprintf(stderr, "cat: write error: %s\n", strerror(errno));
			exit(1);
		}
	}
	err = errno;
	close(fd);
	if (r < 0) {
		/* a sysfs or procfs file whose show() failed: its errno is the answer */
		fprintf(stderr, "cat: %s: %s\n", path, strerror(err));
		return -1;
	}
	return 0;
}

static void do_cat(int argc, char **argv)
{
	int i, failed = 0;

	for (i = 0; i < argc; i++)
		failed |= cat_one(argv[i]) != 0;
	if (failed)
		exit(1);
}

#ifdef __powerpc__
/*
 * QEMU before 8.1 does not restart a TCG pseries guest's decrementer when it restores a snapshot
 * (fixed by QEMU's "target/ppc: Migrate DECR SPR"): the timer event the kernel programmed
 * before the save never fires, and as the kernel only reprograms for an earlier event, no timer
 * fires again. Any write of the DEC register restarts it, and the kernel writes DEC = 1 to raise
 * an irq_work, which printk queues to wake a reader of the kernel log. So: a child blocks
 * reading /dev/kmsg, a line is logged, the child is killed. No timer runs yet: waiting for the
 * child to block is a sched_yield() loop.
 */
static void wake_decrementer(void)
{
	char path[64], st[512];
	pid_t pid = fork();
	int i, k;

	if (pid == 0) {
		char buf[4096];
		int fd = open("/dev/kmsg", O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			_exit(1);
		lseek(fd, 0, SEEK_END);
		for (;;)
			if (read(fd, buf, sizeof(buf)) < 0 && errno != EPIPE && errno != EINTR)
				_exit(1);
	}
	if (pid < 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < 200000; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, st, sizeof(st) - 1) : -1;
		char *p;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			st[n] = 0;
			p = strrchr(st, ')');
			if (p && p[1] == ' ' && p[2] == 'S')
				break;
		}
		sched_yield();
	}
	k = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (k >= 0) {
		if (write(k, "kharness: restored\n", 19) < 0)
			fprintf(stderr, "kh-agent: /dev/kmsg: %s\n", strerror(errno));
		close(k);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
#endif

static void do_restored(const char *epoch, const char *seed)
{
	struct timespec ts = { 0, 1000000 };
	int fd;

#ifdef __powerpc__
	wake_decrementer();
#endif
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	ts.tv_sec = (time_t)strtoll(epoch, NULL, 10);
	ts.tv_nsec = 0;
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		fprintf(stderr, "kh-agent: clock_settime: %s\n", strerror(errno));
	/* Fresh randomness: the restored kernel's CRNG is the saved one, and merely writing to
	 * /dev/urandom does not reseed it, so every restore would draw the same numbers. Add the
	 * host's seed as credited entropy, then force a reseed. */
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		struct {
			struct rand_pool_info info;
			unsigned char bytes[64];
		} in;
		size_t n = 0;

		memset(&in, 0, sizeof(in));
		while (n < sizeof(in.bytes) && seed[2 * n] && seed[2 * n + 1]) {
			unsigned int b;

			if (sscanf(seed + 2 * n, "%2x", &b) != 1)
				break;
			in.bytes[n++] = (unsigned char)b;
		}
		in.info.entropy_count = (int)(n * 8);
		in.info.buf_size = (int)n;
		if (ioctl(fd, RNDADDENTROPY, &in.info) < 0)
			write_all(fd, seed, strlen(seed));	/* at least mix it in */
		if (ioctl(fd, RNDRESEEDCRNG) < 0)
			fprintf(stderr, "kh-agent: RNDRESEEDCRNG: %s\n", strerror(errno));
		close(fd);
	}
	if (mkdir("/kh", 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "kh-agent: mkdir /kh: %s\n", strerror(errno));
		exit(1);
	}
}

static void do_health(void)
{
	size_t len = 0;
	char *t = slurp("/proc/sys/kernel/tainted", &len), *m, *line, *save = NULL;
	int chardevs = 0;

	printf("%s", t ? t : "0\n");
	printf("@@KH@@\n");
	fflush(stdout);
	free(t);
	do_dmesg_since("health");
	printf("@@KH@@\n");
	m = slurp("/proc/modules", &len);
	for (line = m ? strtok_r(m, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
		printf("%.*s\n", (int)strcspn(line, " "), line);
	free(m);
	printf("@@KH@@\n");
	m = slurp("/proc/devices", &len);
	save = NULL;
	/* strtok_r skips the blank line between the two lists: stop at the block devices' header */
	for (line = m ? strtok_r(m, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "Character devices:", 18) == 0)
			chardevs = 1;
		else if (strncmp(line, "Block devices:", 14) == 0)
			chardevs = 0;
		else if (chardevs)
			printf("%s\n", line + strspn(line, " "));
	}
	free(m);
}

/* --- run: one command of the channel protocol ------------------------------------------------ */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(int c)
{
	const char *p = c ? strchr(B64, c) : NULL;

	return p ? (int)(p - B64) : -1;
}

/* Decode base64 (padding and whitespace tolerated) into a new buffer; *len its length. */
static unsigned char *b64decode(const char *s, size_t *len)
{
	size_t n = strlen(s), o = 0;
	unsigned char *out = malloc(n / 4 * 3 + 4);
	unsigned int acc = 0;
	int bits = 0, v;

	if (out == NULL)
		exit(1);
	for (; *s; s++) {
		if (*s == '=')
			break;
		v = b64val((unsigned char)*s);
		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	*len = o;
	return out;
}

/* Append the frame "\036TAG ID SIZE\n" + base64 of the file's first max bytes (76-column lines). */
static void frame(char **buf, size_t *blen, size_t *bcap, const char *tag, const char *id, const char *path,
		  size_t max)
{
	size_t size = 0, n, i, need, col = 0;
	unsigned char *data = (unsigned char *)slurp(path, &size);
	char *o;

	n = size < max ? size : max;
	need = *blen + 64 + (n + 2) / 3 * 4 + n / 57 + 2;
	if (need > *bcap) {
		*bcap = need * 2;
		*buf = realloc(*buf, *bcap);
		if (*buf == NULL)
			exit(1);
	}
	*blen += (size_t)sprintf(*buf + *blen, "\036%s %s %zu\n", tag, id, size);
	o = *buf + *blen;
	for (i = 0; i < n; i += 3) {
		unsigned int v = (unsigned int)data[i] << 16;

		if (i + 1 < n)
			v |= (unsigned int)data[i + 1] << 8;
		if (i + 2 < n)
			v |= data[i + 2];
		*o++ = B64[(v >> 18) & 63];
		*o++ = B64[(v >> 12) & 63];
		*o++ = i + 1 < n ? B64[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? B64[v & 63] : '=';
		col += 4;
		if (col == 76) {
			*o++ = '\n';
			col = 0;
		}
	}
	if (col)
		*o++ = '\n';
	*blen = (size_t)(o - *buf);
	free(data);
}

/* recv: SIZE bytes of base64 from stdin (the command channel) decoded into PATH; exit 1 if they
 * do not all arrive within the deadline (the host then fails the command). */
static void do_recv(const char *size_s, const char *path)
{
	size_t size = parse_len(size_s), got = 0, len;
	char *text = malloc(size + 1);
	unsigned char *data;
	int fd;

	if (text == NULL)
		exit(1);
	/* Generous: the host sends it all at once; a guest that stops getting bytes must not
	 * wait forever on its own channel. */
	alarm(60 + (unsigned int)(size >> 14));
	while (got < size) {
		ssize_t r = read(0, text + got, size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "kh-agent: recv: %zu of %zu bytes\n", got, size);
			exit(1);
		}
		got += (size_t)r;
	}
	alarm(0);
	text[size] = 0;
	data = b64decode(text, &len);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "kh-agent: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	write_all(fd, (const char *)data, len);
	close(fd);
	free(text);
	free(data);
}

/*
 * unpack: the run's files (kharness.image.initramfs.bundle, an uncompressed newc cpio of
 * directories and regular files) from stdin into the current directory, as `cpio -idmu` would:
 * a Debian guest's cpio is one more dynamic binary to exec (~40 ms under TCG). Names that leave
 * the directory (absolute, "..") are refused; files are replaced, not written through.
 */
static unsigned long newc_field(const char *h, int i)
{
	char f[9];

	memcpy(f, h + 6 + 8 * i, 8);
	f[8] = '\0';
	return strtoul(f, NULL, 16);
}

static int unsafe_name(const char *name)
{
	const char *p = name;

	if (name[0] == '/' || name[0] == '\0')
		return 1;
	for (;;) {
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return 1;
		p = strchr(p, '/');
		if (p == NULL)
			return 0;
		p++;
	}
}

static void unpack_fail(const char *what, const char *name)
{
	fprintf(stderr, "kh-agent: unpack: %s%s%s\n", what, name ? ": " : "", name ? name : "");
	exit(1);
}

static void do_unpack(void)
{
	size_t len = 0, cap = 1 << 16, at = 0;
	char *a = malloc(cap);

	if (a == NULL)
		unpack_fail("out of memory", NULL);
	for (;;) {
		ssize_t r;

		if (len == cap) {
			cap *= 2;
			a = realloc(a, cap);
			if (a == NULL)
				unpack_fail("out of memory", NULL);
		}
		r = read(0, a + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			unpack_fail(strerror(errno), "stdin");
		if (r == 0)
			break;
		len += (size_t)r;
	}
	for (;;) {
		unsigned long mode, mtime, size, namesize;
		char *name;
		size_t data;

		if (at + 110 > len || memcmp(a + at, "070701", 6) != 0)
			unpack_fail("not a newc cpio archive (or cut short)", NULL);
		mode = newc_field(a + at, 1);
		mtime = newc_field(a + at, 5);
		size = newc_field(a + at, 6);
		namesize = newc_field(a + at, 11);
		/* (compared so that no sum can wrap, on a 32-bit guest too) */
		if (namesize == 0 || namesize > len - at - 110)
			unpack_fail("a name runs past the end", NULL);
		name = a + at + 110;
		if (name[namesize - 1] != '\0')
			unpack_fail("a name is not terminated", NULL);
		data = (at + 110 + namesize + 3) & ~(size_t)3;
		if (data > len || size > len - data)
			unpack_fail("a file runs past the end", name);
		if (strcmp(name, "TRAILER!!!") == 0)
			break;
		if (strcmp(name, ".") != 0) {
			if (unsafe_name(name))
				unpack_fail("a name leaves the directory", name);
			if (S_ISDIR(mode)) {
				if (mkdir(name, mode & 07777) < 0 && errno != EEXIST)
					unpack_fail(strerror(errno), name);
			} else if (S_ISREG(mode)) {
				struct timespec times[2] = { { (time_t)mtime, 0 }, { (time_t)mtime, 0 } };
				int fd;

				unlink(name);
				fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
				if (fd < 0 || write_all(fd, a + data, size) < 0)
					unpack_fail(strerror(errno), name);
				fchmod(fd, mode & 07777);	/* (past the umask) */
				futimens(fd, times);
				close(fd);
			} else {
				unpack_fail("only directories and regular files are unpacked", name);
			}
		}
		at = (data + size + 3) & ~(size_t)3;
	}
	free(a);
}

static void do_run(const char *id, const char *script_b64, const char *max_s, const char *stdin_path)
{
	size_t len, blen = 0, bcap = 4096, max = parse_len(max_s);
	unsigned char *script = b64decode(script_b64, &len);
	int fd = open("/tmp/.kh.sh", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), status = 0, rc;
	char *buf;
	pid_t pid;

	if (fd < 0) {
		fprintf(stderr, "kh-agent: /tmp/.kh.sh: %s\n", strerror(errno));
		exit(1);
	}
	write_all(fd, (const char *)script, len);
	close(fd);
	free(script);
	pid = fork();
	if (pid == 0) {
		int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
		int out = open("/tmp/.kh.out", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open("/tmp/.kh.err", O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (in < 0 || out < 0 || err < 0 || chdir("/") != 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		execl("/bin/sh", "sh", "/tmp/.kh.sh", (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		fprintf(stderr, "kh-agent: fork: %s\n", strerror(errno));
		exit(1);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* the shell's convention: 128 + the signal for a command killed by one */
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	buf = malloc(bcap);
	if (buf == NULL)
		exit(1);
	frame(&buf, &blen, &bcap, "KHO", id, "/tmp/.kh.out", max);
	frame(&buf, &blen, &bcap, "KHR", id, "/tmp/.kh.err", max);
	if (blen + 64 > bcap) {
		bcap = blen + 64;
		buf = realloc(buf, bcap);
		if (buf == NULL)
			exit(1);
	}
	blen += (size_t)sprintf(buf + blen, "\036KHE %s %d\n", id, rc);
	write_all(1, buf, blen);
	free(buf);
}

int main(int argc, char **argv)
{
	const char *op = argc > 1 ? argv[1] : "";

	if (strcmp(op, "version") == 0 && argc == 2)
		puts("kh-agent 4");
	else if (strcmp(op, "ioctl") == 0 && argc == 6)
		do_ioctl(argv[2], argv[3], argv[4], argv[5]);
	else if (strcmp(op, "write") == 0 && argc == 4)
		do_write(argv[2], argv[3], O_WRONLY);
	else if (strcmp(op, "redirect") == 0 && argc == 4)
		do_write(argv[2], argv[3], O_WRONLY | O_CREAT | O_TRUNC);
	else if (strcmp(op, "read") == 0 && argc == 4)
		do_read(argv[2], argv[3]);
	else if (strcmp(op, "session") == 0 && argc >= 4)
		do_session(argv[2], argv[3], argc - 4, argv + 4);
	else if (strcmp(op, "hold") == 0 && argc == 5)
		do_hold(argv[2], argv[3], argv[4]);
	else if (strcmp(op, "gpio-chips") == 0 && argc == 2)
		do_gpio_chips();
	else if (strcmp(op, "gpio-line") == 0 && argc == 5)
		do_gpio_line(argv[2], argv[3], argv[4]);
	else if (strcmp(op, "dmesg-since") == 0 && (argc == 2 || argc == 3))
		do_dmesg_since(argc == 3 ? argv[2] : "health");
	else if (strcmp(op, "restored") == 0 && argc == 4)
		do_restored(argv[2], argv[3]);
	else if (strcmp(op, "health") == 0 && argc == 2)
		do_health();
	else if (strcmp(op, "run") == 0 && (argc == 5 || argc == 6))
		do_run(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL);
	else if (strcmp(op, "recv") == 0 && argc == 4)
		do_recv(argv[2], argv[3]);
	else if (strcmp(op, "insmod") == 0 && argc >= 3)
		do_insmod(argc - 2, argv + 2);
	else if (strcmp(op, "rmmod") == 0 && argc >= 3)
		do_rmmod(argc - 2, argv + 2);
	else if (strcmp(op, "cat") == 0 && argc >= 3)
		do_cat(argc - 2, argv + 2);
	else if (strcmp(op, "udev-settle") == 0 && argc == 2)
		do_udev_settle();
	else if (strcmp(op, "unpack") == 0 && argc == 2)
		do_unpack();
	else
		usage(argc > 1 ? "unknown operation or wrong number of arguments" : "no operation");
	return fflush(stdout) == 0 ? 0 : 1;
}
