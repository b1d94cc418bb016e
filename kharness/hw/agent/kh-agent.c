// SPDX-License-Identifier: GPL-2.0
/*
 * kh-agent: the kharness guest agent.
 *
 * Runs inside the guest (busybox initramfs) and performs the system calls shell cannot do
 * exactly: ioctl with a binary payload, and one read() or write() with exact bytes. One
 * operation per invocation; the result is ONE line of space-separated key=value pairs on
 * stdout, binary data in lowercase hex (kharness.hw.agent.parse_reply reads it).
 *
 *   kh-agent ioctl PATH REQUEST_HEX IN_HEX OUT_LEN   ret=N errno=NAME|0 out=HEX
 *   kh-agent write PATH DATA_HEX                     ret=N errno=NAME|0
 *   kh-agent read PATH COUNT                         ret=N errno=NAME|0 data=HEX
 *   kh-agent version                                 kh-agent 1
 *
 * IN_HEX "-" is an empty payload; with OUT_LEN 0 too, ioctl gets the integer 0 as its
 * argument (for _IO requests). Exit status: 0 when the operation was attempted (its result is
 * in the line), 2 on bad usage, 3 when PATH cannot be opened (the line is open_errno=NAME).
 */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_LEN (1UL << 24)

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
		"usage: kh-agent ioctl PATH REQUEST_HEX IN_HEX|- OUT_LEN\n"
		"       kh-agent write PATH DATA_HEX\n"
		"       kh-agent read PATH COUNT\n"
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
	int fd = open(path, flags | O_NOCTTY);

	/* ioctl: a node we may not write to can still take ioctls read-only. */
	if (fd < 0 && flags == O_RDWR && (errno == EACCES || errno == EPERM || errno == EISDIR))
		fd = open(path, O_RDONLY | O_NOCTTY);
	if (fd < 0) {
		printf("open_errno=%s\n", errname(errno));
		exit(3);
	}
	return fd;
}

static void do_ioctl(const char *path, const char *req_hex, const char *in_hex, const char *out_s)
{
	size_t out_len = parse_len(out_s), in_len;
	unsigned char *buf = parse_hex(in_hex, out_len > 8 ? out_len : 8, &in_len);
	unsigned long req;
	char *end;
	int fd, ret, err;

	errno = 0;
	req = strtoul(req_hex, &end, 16);
	if (*req_hex == '\0' || *req_hex == '-' || *end != '\0' || errno != 0)
		usage("bad request number");
	fd = open_or_exit(path, O_RDWR);
	errno = 0;
	if (in_len == 0 && out_len == 0)
		ret = ioctl(fd, req, (unsigned long)0);
	else
		ret = ioctl(fd, req, buf);
	err = ret < 0 ? errno : 0;
	printf("ret=%d errno=%s out=", ret, errname(err));
	print_hex(buf, out_len);
	putchar('\n');
	close(fd);
	free(buf);
}

static void do_write(const char *path, const char *data_hex)
{
	size_t len;
	unsigned char *buf = parse_hex(data_hex, 0, &len);
	int fd = open_or_exit(path, O_WRONLY);
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

int main(int argc, char **argv)
{
	const char *op = argc > 1 ? argv[1] : "";

	if (strcmp(op, "version") == 0 && argc == 2)
		puts("kh-agent 1");
	else if (strcmp(op, "ioctl") == 0 && argc == 6)
		do_ioctl(argv[2], argv[3], argv[4], argv[5]);
	else if (strcmp(op, "write") == 0 && argc == 4)
		do_write(argv[2], argv[3]);
	else if (strcmp(op, "read") == 0 && argc == 4)
		do_read(argv[2], argv[3]);
	else
		usage(argc > 1 ? "unknown operation or wrong number of arguments" : "no operation");
	return fflush(stdout) == 0 ? 0 : 1;
}
