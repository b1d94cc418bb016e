// SPDX-License-Identifier: GPL-2.0
/*
 * procfs.c - a readable and writable /proc file.
 *
 * Creates /proc/procfs_demo with struct proc_ops (available since 5.6).
 * Reading returns the stored buffer (initially "hello from procfs\n").
 * Each write replaces the buffer with the written bytes (at most
 * PROCFS_DEMO_MAX in a single write; longer writes fail with -EINVAL).
 * A mutex serialises readers and writers.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 6, 0)
#error "this example uses struct proc_ops, which needs Linux 5.6 or later"
#endif

#define PROCFS_DEMO_NAME "procfs_demo"
#define PROCFS_DEMO_MAX 1023 /* payload bytes; one more for the NUL */
#define PROCFS_DEMO_INITIAL "hello from procfs\n"

static struct proc_dir_entry *demo_entry;
static DEFINE_MUTEX(demo_lock);
static char demo_buf[PROCFS_DEMO_MAX + 1] = PROCFS_DEMO_INITIAL;
static size_t demo_len = sizeof(PROCFS_DEMO_INITIAL) - 1;

static ssize_t demo_read(struct file *file, char __user *ubuf, size_t count,
			 loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&demo_lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, demo_buf, demo_len);
	mutex_unlock(&demo_lock);
	return ret;
}

static ssize_t demo_write(struct file *file, const char __user *ubuf,
			  size_t count, loff_t *ppos)
{
	ssize_t ret;

	if (count > PROCFS_DEMO_MAX)
		return -EINVAL;

	mutex_lock(&demo_lock);
	if (copy_from_user(demo_buf, ubuf, count)) {
		/* The buffer may be half-overwritten: empty it. */
		demo_len = 0;
		demo_buf[0] = '\0';
		ret = -EFAULT;
	} else {
		demo_len = count;
		demo_buf[count] = '\0';
		ret = count;
	}
	mutex_unlock(&demo_lock);

	if (ret > 0)
		pr_info("stored %zu bytes\n", count);
	return ret;
}

static const struct proc_ops demo_proc_ops = {
	.proc_read = demo_read,
	.proc_write = demo_write,
};

static int __init procfs_demo_init(void)
{
	demo_entry = proc_create(PROCFS_DEMO_NAME, 0644, NULL, &demo_proc_ops);
	if (!demo_entry) {
		pr_err("could not create /proc/%s\n", PROCFS_DEMO_NAME);
		return -ENOMEM;
	}
	pr_info("/proc/%s created\n", PROCFS_DEMO_NAME);
	return 0;
}

static void __exit procfs_demo_exit(void)
{
	proc_remove(demo_entry);
	pr_info("/proc/%s removed\n", PROCFS_DEMO_NAME);
}

module_init(procfs_demo_init);
module_exit(procfs_demo_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness");
MODULE_DESCRIPTION("Readable and writable /proc file using struct proc_ops");
