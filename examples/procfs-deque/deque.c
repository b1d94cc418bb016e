// SPDX-License-Identifier: GPL-2.0
/*
 * deque.c - /proc/deque: a deque of 32-bit integers per process.
 *
 * The interface of the "full fledged example" in the LKM procfs tutorial
 * (lkm-procfs-deque-tutorial.md), written afresh:
 *
 *  1. A process opens /proc/deque (read-write).  Each process gets its own
 *     deque, keyed by its tgid; opening the file a second time while the
 *     first is still open fails with -EACCES.
 *  2. Its first write is one byte, the capacity N, 1 <= N <= 100.  Any other
 *     value or length fails with -EINVAL and leaves the deque uninitialised.
 *  3. Every further write is one native-endian s32 (exactly 4 bytes, else
 *     -EINVAL): odd numbers go in on the left, even ones on the right.
 *     A write to a full deque fails with -EACCES.
 *  4. A read (of at least 4 bytes, else -EINVAL) takes the leftmost number
 *     and returns 4; reading an empty or uninitialised deque fails with
 *     -EACCES.
 *  5. Closing the file frees the deque, so reopening it starts afresh.
 *
 * The deque belongs to the open file (file->private_data), so a child that
 * inherits the descriptor (a dd reading fd 3 of its shell) works on its
 * parent's deque, and the release that frees it may run in any process.
 * One mutex guards the list of deques and their contents.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/types.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 6, 0)
#error "this example uses struct proc_ops, which needs Linux 5.6 or later"
#endif

#define DEQUE_NAME "deque"
#define DEQUE_MAX_CAPACITY 100

struct deque {
	struct list_head node;	/* in deques */
	struct pid *owner;	/* the opener's thread group */
	s32 *items;		/* NULL until the capacity is written */
	unsigned int capacity;
	unsigned int head;	/* index of the leftmost item */
	unsigned int len;
};

static struct proc_dir_entry *deque_entry;
static LIST_HEAD(deques);
static DEFINE_MUTEX(deque_lock);

static void deque_push_left(struct deque *d, s32 v)
{
	d->head = (d->head + d->capacity - 1) % d->capacity;
	d->items[d->head] = v;
	d->len++;
}

static void deque_push_right(struct deque *d, s32 v)
{
	d->items[(d->head + d->len) % d->capacity] = v;
	d->len++;
}

static s32 deque_pop_left(struct deque *d)
{
	s32 v = d->items[d->head];

	d->head = (d->head + 1) % d->capacity;
	d->len--;
	return v;
}

static int deque_open(struct inode *inode, struct file *file)
{
	struct pid *tgid = task_tgid(current);
	struct deque *d, *other;

	/* Charged to the opener's memory cgroup: the file is world-writable. */
	d = kzalloc(sizeof(*d), GFP_KERNEL_ACCOUNT);
	if (!d)
		return -ENOMEM;

	mutex_lock(&deque_lock);
	/*
	 * Compare struct pid pointers, not numbers: our reference keeps an
	 * owner's struct pid alive, so a recycled tgid cannot be mistaken
	 * for it.
	 */
	list_for_each_entry(other, &deques, node) {
		if (other->owner == tgid) {
			mutex_unlock(&deque_lock);
			kfree(d);
			return -EACCES;
		}
	}
	d->owner = get_pid(tgid);
	list_add(&d->node, &deques);
	mutex_unlock(&deque_lock);

	file->private_data = d;
	/* A deque has no file position: lseek and pread/pwrite get -ESPIPE. */
	return stream_open(inode, file);
}

static int deque_release(struct inode *inode, struct file *file)
{
	struct deque *d = file->private_data;

	mutex_lock(&deque_lock);
	list_del(&d->node);
	mutex_unlock(&deque_lock);

	pr_info("process %d: closed, %u item(s) dropped\n", pid_nr(d->owner), d->len);
	put_pid(d->owner);
	kfree(d->items);
	kfree(d);
	return 0;
}

/* The first write: one byte, the capacity. Called with deque_lock held. */
static ssize_t deque_set_capacity(struct deque *d, const char __user *ubuf, size_t count)
{
	u8 n;

	if (count != 1)
		return -EINVAL;
	if (get_user(n, ubuf))
		return -EFAULT;
	if (n < 1 || n > DEQUE_MAX_CAPACITY)
		return -EINVAL;

	d->items = kmalloc_array(n, sizeof(*d->items), GFP_KERNEL_ACCOUNT);
	if (!d->items)
		return -ENOMEM;
	d->capacity = n;
	d->head = 0;
	d->len = 0;
	pr_info("process %d: capacity %u\n", pid_nr(d->owner), n);
	return 1;
}

static ssize_t deque_write(struct file *file, const char __user *ubuf, size_t count,
			   loff_t *ppos)
{
	struct deque *d = file->private_data;
	ssize_t ret;
	s32 v;

	mutex_lock(&deque_lock);
	if (!d->items) {
		ret = deque_set_capacity(d, ubuf, count);
		goto out;
	}

	ret = -EINVAL;
	if (count != sizeof(v))
		goto out;
	ret = -EFAULT;
	if (copy_from_user(&v, ubuf, sizeof(v)))
		goto out;
	ret = -EACCES;
	if (d->len == d->capacity)
		goto out;

	/* v % 2 is -1 for negative odd numbers: test for non-zero. */
	if (v % 2)
		deque_push_left(d, v);
	else
		deque_push_right(d, v);
	ret = sizeof(v);
out:
	mutex_unlock(&deque_lock);
	return ret;
}

static ssize_t deque_read(struct file *file, char __user *ubuf, size_t count,
			  loff_t *ppos)
{
	struct deque *d = file->private_data;
	ssize_t ret;

	if (count < sizeof(s32))
		return -EINVAL;

	mutex_lock(&deque_lock);
	ret = -EACCES;
	if (!d->len)
		goto out;
	/* Copy before popping: a bad buffer must not lose the item. */
	ret = -EFAULT;
	if (copy_to_user(ubuf, &d->items[d->head], sizeof(s32)))
		goto out;
	deque_pop_left(d);
	ret = sizeof(s32);
out:
	mutex_unlock(&deque_lock);
	return ret;
}

static const struct proc_ops deque_proc_ops = {
	.proc_open = deque_open,
	.proc_read = deque_read,
	.proc_write = deque_write,
	.proc_release = deque_release,
};

static int __init deque_init(void)
{
	deque_entry = proc_create(DEQUE_NAME, 0666, NULL, &deque_proc_ops);
	if (!deque_entry) {
		pr_err("could not create /proc/%s\n", DEQUE_NAME);
		return -ENOMEM;
	}
	pr_info("/proc/%s created\n", DEQUE_NAME);
	return 0;
}

static void __exit deque_exit(void)
{
	struct deque *d;
	unsigned int open = 0;

	mutex_lock(&deque_lock);
	list_for_each_entry(d, &deques, node)
		open++;
	mutex_unlock(&deque_lock);

	/*
	 * proc_remove() waits for running calls and then calls
	 * deque_release() for every file still open, so nothing is left
	 * to free afterwards.
	 */
	proc_remove(deque_entry);
	WARN_ON(!list_empty(&deques));
	pr_info("/proc/%s removed, %u deque(s) still open were freed\n", DEQUE_NAME, open);
}

module_init(deque_init);
module_exit(deque_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness");
MODULE_DESCRIPTION("Per-process deque of integers in /proc/deque (proc_ops, mutex)");
