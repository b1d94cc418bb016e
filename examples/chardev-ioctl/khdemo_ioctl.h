/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ioctl interface of khdemo, shared by the module and user space.
 *
 * struct kh_msg mixes field sizes on purpose: a host that packs it with the wrong endianness,
 * word size or padding gets visibly wrong numbers back.
 */
#ifndef KHDEMO_IOCTL_H
#define KHDEMO_IOCTL_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/ioctl.h>
#else
#include <linux/types.h>
#include <sys/ioctl.h>
#endif

struct kh_msg {
	__u8  flag;        /* offset 0, then 3 bytes of padding */
	__u32 a;           /* offset 4 */
	__u16 b;           /* offset 8, then 6 bytes of padding */
	__u64 c;           /* offset 16 (8-aligned on every ABI kharness targets) */
	char  text[16];    /* offset 24; sizeof = 40 */
};

#define KH_MAGIC 'k'
#define KH_SET   _IOW(KH_MAGIC, 1, struct kh_msg)   /* store a message */
#define KH_GET   _IOR(KH_MAGIC, 2, struct kh_msg)   /* read the stored message back */
#define KH_XFORM _IOWR(KH_MAGIC, 3, struct kh_msg)  /* a := 2a, b := b+1, c := c+1, text upper-cased, flag := !flag */
#define KH_RESET _IO(KH_MAGIC, 4)                   /* forget the stored message */
#define KH_NTH   _IO(KH_MAGIC, 5)                   /* ioctl(fd, KH_NTH, n): byte n of the text written
                                                       to the device, the integer n passed by value */

#endif
