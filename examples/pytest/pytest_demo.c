// SPDX-License-Identifier: GPL-2.0
/*
 * pytest_demo: A /proc file tested from pytest
 *
 * /proc/pytest_demo: reading shows the stored message and how often it was written (seq_file);
 * writing replaces the message (copy_from_user, at most PYTEST_DEMO_MAX bytes). A mutex
 * keeps readers and writers apart.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#define PYTEST_DEMO_MAX 128

static DEFINE_MUTEX(pytest_demo_lock);
static char pytest_demo_msg[PYTEST_DEMO_MAX + 1] = "empty";
static unsigned int pytest_demo_writes;
static struct proc_dir_entry *pytest_demo_entry;

static int pytest_demo_show(struct seq_file *m, void *v)
{
	mutex_lock(&pytest_demo_lock);
	seq_printf(m, "%s\nwrites: %u\n", pytest_demo_msg, pytest_demo_writes);
	mutex_unlock(&pytest_demo_lock);
	return 0;
}

static int pytest_demo_open(struct inode *inode, struct file *file)
{
	return single_open(file, pytest_demo_show, NULL);
}

static ssize_t pytest_demo_write(struct file *file, const char __user *buf, size_t count,
			       loff_t *ppos)
{
	char tmp[PYTEST_DEMO_MAX + 1];

	if (count == 0 || count > PYTEST_DEMO_MAX)
		return -EINVAL;
	if (copy_from_user(tmp, buf, count))
		return -EFAULT;
	tmp[count] = '\0';
	if (tmp[count - 1] == '\n')
		tmp[count - 1] = '\0';
	mutex_lock(&pytest_demo_lock);
	strscpy(pytest_demo_msg, tmp, sizeof(pytest_demo_msg));
	pytest_demo_writes++;
	mutex_unlock(&pytest_demo_lock);
	return count;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 6, 0)
static const struct proc_ops pytest_demo_fops = {
	.proc_open = pytest_demo_open,
	.proc_read = seq_read,
	.proc_write = pytest_demo_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};
#else
static const struct file_operations pytest_demo_fops = {
	.owner = THIS_MODULE,
	.open = pytest_demo_open,
	.read = seq_read,
	.write = pytest_demo_write,
	.llseek = seq_lseek,
	.release = single_release,
};
#endif

static int __init pytest_demo_init(void)
{
	pytest_demo_entry = proc_create("pytest_demo", 0666, NULL, &pytest_demo_fops);
	if (!pytest_demo_entry)
		return -ENOMEM;
	pr_info("pytest_demo: /proc/pytest_demo created\n");
	return 0;
}

static void __exit pytest_demo_exit(void)
{
	proc_remove(pytest_demo_entry);
	pr_info("pytest_demo: /proc/pytest_demo removed\n");
}

module_init(pytest_demo_init);
module_exit(pytest_demo_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness examples");
MODULE_DESCRIPTION("A /proc file tested from pytest");
