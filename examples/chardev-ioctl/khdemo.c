// SPDX-License-Identifier: GPL-2.0
/*
 * khdemo: a character device (/dev/khdemo, a misc device so devtmpfs creates the node) with
 * read/write of a text buffer, _IO/_IOR/_IOW/_IOWR ioctls carrying a struct with mixed field
 * sizes, one taking an integer by value, and exclusive open (a second open gets -EBUSY).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>

#include "khdemo_ioctl.h"

static DEFINE_MUTEX(khdemo_lock);       /* guards msg, text and the exclusive-open flag */
static struct kh_msg msg;
static char text[64];
static size_t text_len;
static bool in_use;

static int khdemo_open(struct inode *inode, struct file *file)
{
	int ret = 0;

	mutex_lock(&khdemo_lock);
	if (in_use)
		ret = -EBUSY;
	else
		in_use = true;
	mutex_unlock(&khdemo_lock);
	return ret;
}

static int khdemo_release(struct inode *inode, struct file *file)
{
	mutex_lock(&khdemo_lock);
	in_use = false;
	mutex_unlock(&khdemo_lock);
	return 0;
}

static ssize_t khdemo_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&khdemo_lock);
	ret = simple_read_from_buffer(buf, count, ppos, text, text_len);
	mutex_unlock(&khdemo_lock);
	return ret;
}

static ssize_t khdemo_write(struct file *file, const char __user *buf, size_t count, loff_t *ppos)
{
	if (count > sizeof(text))
		return -EINVAL;
	mutex_lock(&khdemo_lock);
	if (copy_from_user(text, buf, count)) {
		mutex_unlock(&khdemo_lock);
		return -EFAULT;
	}
	text_len = count;
	mutex_unlock(&khdemo_lock);
	return count;
}

static long khdemo_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	struct kh_msg m;
	long ret = 0;
	int i;

	mutex_lock(&khdemo_lock);
	switch (cmd) {
	case KH_SET:
		if (copy_from_user(&m, uarg, sizeof(m))) {
			ret = -EFAULT;
			break;
		}
		m.text[sizeof(m.text) - 1] = '\0';
		msg = m;
		pr_info("set flag=%u a=%u b=%u c=%llu text=%s\n", msg.flag, msg.a, msg.b,
			(unsigned long long)msg.c, msg.text);
		break;
	case KH_GET:
		if (copy_to_user(uarg, &msg, sizeof(msg)))
			ret = -EFAULT;
		break;
	case KH_XFORM:
		if (copy_from_user(&m, uarg, sizeof(m))) {
			ret = -EFAULT;
			break;
		}
		m.flag = !m.flag;
		m.a *= 2;
		m.b += 1;
		m.c += 1;
		m.text[sizeof(m.text) - 1] = '\0';
		for (i = 0; m.text[i]; i++)
			m.text[i] = toupper(m.text[i]);
		if (copy_to_user(uarg, &m, sizeof(m)))
			ret = -EFAULT;
		break;
	case KH_RESET:
		memset(&msg, 0, sizeof(msg));
		break;
	case KH_NTH:            /* arg is the index itself, not a pointer (LKMPG's IOCTL_GET_NTH_BYTE) */
		ret = arg < text_len ? (unsigned char)text[arg] : -EINVAL;
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&khdemo_lock);
	return ret;
}

static const struct file_operations khdemo_fops = {
	.owner          = THIS_MODULE,
	.open           = khdemo_open,
	.release        = khdemo_release,
	.read           = khdemo_read,
	.write          = khdemo_write,
	.unlocked_ioctl = khdemo_ioctl,
	.compat_ioctl   = compat_ptr_ioctl,
	.llseek         = default_llseek,
};

static struct miscdevice khdemo_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name  = "khdemo",
	.fops  = &khdemo_fops,
	.mode  = 0666,
};

static int __init khdemo_init(void)
{
	int ret = misc_register(&khdemo_dev);

	if (ret)
		return ret;
	pr_info("/dev/khdemo ready (struct kh_msg is %zu bytes)\n", sizeof(struct kh_msg));
	return 0;
}

static void __exit khdemo_exit(void)
{
	misc_deregister(&khdemo_dev);
	pr_info("/dev/khdemo removed\n");
}

module_init(khdemo_init);
module_exit(khdemo_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness");
MODULE_DESCRIPTION("Character device with read/write, struct-carrying ioctls and exclusive open");
