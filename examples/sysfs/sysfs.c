// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs.c - a kobject with read/write and read-only attributes.
 *
 * Creates /sys/kernel/kharness_sysfs/ (a kobject under kernel_kobj) with
 *
 *   value   0664  an int; a write is parsed with kstrtoint(), so "42" and
 *                 "42\n" are accepted, garbage fails with -EINVAL and an
 *                 out-of-range number with -ERANGE (the value is unchanged)
 *   writes  0444  how many writes to value succeeded
 *
 * A mutex keeps value and writes consistent with each other.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sysfs.h>

#define KH_SYSFS_DIR "kharness_sysfs"

static struct kobject *kh_kobj;
static DEFINE_MUTEX(kh_lock);
static int kh_value;
static unsigned int kh_writes;

static ssize_t value_show(struct kobject *kobj, struct kobj_attribute *attr,
			  char *buf)
{
	int v;

	mutex_lock(&kh_lock);
	v = kh_value;
	mutex_unlock(&kh_lock);
	return sysfs_emit(buf, "%d\n", v);
}

static ssize_t value_store(struct kobject *kobj, struct kobj_attribute *attr,
			   const char *buf, size_t count)
{
	unsigned int n;
	int v, ret;

	/* kstrtoint() takes one optional trailing newline, as echo adds. */
	ret = kstrtoint(buf, 10, &v);
	if (ret)
		return ret;

	mutex_lock(&kh_lock);
	kh_value = v;
	n = ++kh_writes;
	mutex_unlock(&kh_lock);

	pr_info("value set to %d (write #%u)\n", v, n);
	/* All of buf was consumed, newline included. */
	return count;
}

static ssize_t writes_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	unsigned int n;

	mutex_lock(&kh_lock);
	n = kh_writes;
	mutex_unlock(&kh_lock);
	return sysfs_emit(buf, "%u\n", n);
}

/* 0664: sysfs refuses world-writable attributes at compile time. */
static struct kobj_attribute value_attr = __ATTR(value, 0664, value_show, value_store);
static struct kobj_attribute writes_attr = __ATTR_RO(writes);

static struct attribute *kh_attrs[] = {
	&value_attr.attr,
	&writes_attr.attr,
	NULL,
};

static const struct attribute_group kh_group = {
	.attrs = kh_attrs,
};

static int __init kh_sysfs_init(void)
{
	int ret;

	kh_kobj = kobject_create_and_add(KH_SYSFS_DIR, kernel_kobj);
	if (!kh_kobj)
		return -ENOMEM;

	ret = sysfs_create_group(kh_kobj, &kh_group);
	if (ret) {
		kobject_put(kh_kobj);
		return ret;
	}
	pr_info("/sys/kernel/%s created\n", KH_SYSFS_DIR);
	return 0;
}

static void __exit kh_sysfs_exit(void)
{
	/* The last reference: removes the directory with its attributes. */
	kobject_put(kh_kobj);
	pr_info("/sys/kernel/%s removed\n", KH_SYSFS_DIR);
}

module_init(kh_sysfs_init);
module_exit(kh_sysfs_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness");
MODULE_DESCRIPTION("kobject in /sys/kernel with a read/write and a read-only attribute");
