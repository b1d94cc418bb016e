// SPDX-License-Identifier: GPL-2.0
/*
 * khgpio: the kharness virtual GPIO controller.
 *
 * Debian's kernels have no gpio-sim, gpio-mockup or irq_sim, and QEMU's boards offer no GPIO
 * input the host can drive. So kharness loads this module before the module under test: a
 * gpio_chip with its own interrupt domain whose input levels the harness drives, whose output
 * levels it records, and whose edges reach gpio_to_irq() users as real interrupts, on every
 * kernel from 5.10 on and every architecture.
 *
 * Control, in debugfs (/sys/kernel/debug/khgpio/):
 *   base, ngpio            the chip's first global GPIO number and its line count
 *   lineN/value            read: the level (the driven input, or the output the module set);
 *                          write 0/1: drive the input level (edges raise interrupts)
 *   lineN/irqs             interrupts delivered for the line so far
 *   lineN/direction        "in" or "out"
 *   pulse                  write "LINE COUNT INTERVAL_US": COUNT low-high-low pulses, each
 *                          level held INTERVAL_US; each edge is delivered before the next
 *   events                 output level changes: "<ns since boot> <line> <level>" per line
 *
 * Interrupts are raised from an irq_work, so handlers run in hard interrupt context as they
 * would for a real controller; the writer waits until each edge is handled.
 */
#include <linux/module.h>
#include <linux/version.h>
#include <linux/gpio/driver.h>
#include <linux/irq.h>
#include <linux/irqdomain.h>
#include <linux/irq_work.h>
#include <linux/interrupt.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/ktime.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/mutex.h>

#define KHGPIO_MAX_LINES 64
#define KHGPIO_EVENTS 256

/* gpio_chip's set() returns int from 6.17 (set_rv() was the transition); void before. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
#define KHGPIO_SET_RET int
#define KHGPIO_SET_OK 0
#else
#define KHGPIO_SET_RET void
#define KHGPIO_SET_OK
#endif

static int base = -1;
module_param(base, int, 0444);
MODULE_PARM_DESC(base, "first global GPIO number (-1: let the kernel choose)");
static unsigned int ngpio = 32;
module_param(ngpio, uint, 0444);
MODULE_PARM_DESC(ngpio, "number of lines (1-64)");

struct khgpio_line {
	bool out;		/* direction: output? */
	bool level;		/* current level */
	bool masked;
	unsigned int type;	/* IRQ_TYPE_* */
	unsigned long irqs;	/* interrupts delivered */
	unsigned int virq;
	unsigned int index;
};

struct khgpio_event {
	u64 ns;
	unsigned int line;
	bool level;
};

static struct khgpio {
	struct gpio_chip chip;
	raw_spinlock_t lock;
	struct mutex drive;		/* one driver of inputs at a time */
	struct irq_domain *domain;
	struct fwnode_handle *fwnode;
	struct irq_work work;
	unsigned int pending_line;	/* the line whose edge the irq_work delivers */
	struct khgpio_line line[KHGPIO_MAX_LINES];
	struct khgpio_event events[KHGPIO_EVENTS];
	unsigned int nevents;		/* total ever recorded; the ring keeps the last */
	struct dentry *dir;
} kg;

static void khgpio_record(unsigned int offset, bool level)
{
	struct khgpio_event *e = &kg.events[kg.nevents % KHGPIO_EVENTS];

	e->ns = ktime_get_ns();
	e->line = offset;
	e->level = level;
	kg.nevents++;
}

/* --- gpio_chip ------------------------------------------------------------------------- */

static int khgpio_get(struct gpio_chip *gc, unsigned int offset)
{
	return kg.line[offset].level;
}

static KHGPIO_SET_RET khgpio_set(struct gpio_chip *gc, unsigned int offset, int value)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&kg.lock, flags);
	if (kg.line[offset].out && kg.line[offset].level != !!value)
		khgpio_record(offset, !!value);
	if (kg.line[offset].out)
		kg.line[offset].level = !!value;
	raw_spin_unlock_irqrestore(&kg.lock, flags);
	return KHGPIO_SET_OK;
}

static int khgpio_direction_input(struct gpio_chip *gc, unsigned int offset)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&kg.lock, flags);
	kg.line[offset].out = false;
	raw_spin_unlock_irqrestore(&kg.lock, flags);
	return 0;
}

static int khgpio_direction_output(struct gpio_chip *gc, unsigned int offset, int value)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&kg.lock, flags);
	kg.line[offset].out = true;
	if (kg.line[offset].level != !!value)
		khgpio_record(offset, !!value);
	kg.line[offset].level = !!value;
	raw_spin_unlock_irqrestore(&kg.lock, flags);
	return 0;
}

static int khgpio_get_direction(struct gpio_chip *gc, unsigned int offset)
{
	return kg.line[offset].out ? GPIO_LINE_DIRECTION_OUT : GPIO_LINE_DIRECTION_IN;
}

static int khgpio_to_irq(struct gpio_chip *gc, unsigned int offset)
{
	return kg.line[offset].virq ? kg.line[offset].virq : -ENXIO;
}

/* --- interrupts ------------------------------------------------------------------------ */

static void khgpio_irq_mask(struct irq_data *d)
{
	kg.line[irqd_to_hwirq(d)].masked = true;
}

static void khgpio_irq_unmask(struct irq_data *d)
{
	kg.line[irqd_to_hwirq(d)].masked = false;
}

static int khgpio_irq_set_type(struct irq_data *d, unsigned int type)
{
	kg.line[irqd_to_hwirq(d)].type = type & IRQ_TYPE_SENSE_MASK;
	return 0;
}

static struct irq_chip khgpio_irq_chip = {
	.name = "khgpio",
	.irq_mask = khgpio_irq_mask,
	.irq_unmask = khgpio_irq_unmask,
	.irq_set_type = khgpio_irq_set_type,
};

static int khgpio_irq_map(struct irq_domain *d, unsigned int virq, irq_hw_number_t hw)
{
	irq_set_chip_and_handler(virq, &khgpio_irq_chip, handle_simple_irq);
	/* Requestable, not auto-probed: what a GPIO controller's interrupts are. */
	irq_modify_status(virq, IRQ_NOREQUEST | IRQ_NOAUTOEN, IRQ_NOPROBE);
	return 0;
}

static const struct irq_domain_ops khgpio_domain_ops = {
	.map = khgpio_irq_map,
	.xlate = irq_domain_xlate_twocell,
};

/* Runs in hard interrupt context: deliver the pending line's interrupt. */
static void khgpio_irq_work(struct irq_work *work)
{
	struct khgpio_line *l = &kg.line[kg.pending_line];

	l->irqs++;
	generic_handle_irq(l->virq);
}

static bool khgpio_edge_fires(struct khgpio_line *l, bool rising)
{
	unsigned int t = l->type;

	if (l->masked || !t)
		return false;
	if (rising)
		return t & (IRQ_TYPE_EDGE_RISING | IRQ_TYPE_LEVEL_HIGH);
	return t & (IRQ_TYPE_EDGE_FALLING | IRQ_TYPE_LEVEL_LOW);
}

/* Drive input @offset to @level; an edge that the line's trigger type asks for is delivered
 * before this returns. Caller holds kg.drive. */
static int khgpio_drive(unsigned int offset, bool level)
{
	struct khgpio_line *l = &kg.line[offset];
	unsigned long flags;
	bool fire;

	raw_spin_lock_irqsave(&kg.lock, flags);
	if (l->out) {
		raw_spin_unlock_irqrestore(&kg.lock, flags);
		return -EPERM;	/* the module drives this line */
	}
	fire = l->level != level && khgpio_edge_fires(l, level);
	l->level = level;
	raw_spin_unlock_irqrestore(&kg.lock, flags);
	if (fire) {
		kg.pending_line = offset;
		irq_work_queue(&kg.work);
		irq_work_sync(&kg.work);
	}
	return 0;
}

/* --- debugfs --------------------------------------------------------------------------- */

static int khgpio_read_text(char __user *buf, size_t count, loff_t *ppos, const char *text)
{
	return simple_read_from_buffer(buf, count, ppos, text, strlen(text));
}

static ssize_t khgpio_parse(const char __user *ubuf, size_t count, char *buf, size_t size)
{
	if (count >= size)
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	return count;
}

static ssize_t value_read(struct file *f, char __user *buf, size_t count, loff_t *ppos)
{
	struct khgpio_line *l = f->private_data;

	return khgpio_read_text(buf, count, ppos, l->level ? "1\n" : "0\n");
}

static ssize_t value_write(struct file *f, const char __user *ubuf, size_t count, loff_t *ppos)
{
	struct khgpio_line *l = f->private_data;
	char buf[8];
	unsigned int v;
	ssize_t ret = khgpio_parse(ubuf, count, buf, sizeof(buf));

	if (ret < 0)
		return ret;
	if (kstrtouint(strim(buf), 0, &v) || v > 1)
		return -EINVAL;
	mutex_lock(&kg.drive);
	ret = khgpio_drive(l->index, v);
	mutex_unlock(&kg.drive);
	return ret < 0 ? ret : count;
}

static ssize_t irqs_read(struct file *f, char __user *buf, size_t count, loff_t *ppos)
{
	struct khgpio_line *l = f->private_data;
	char text[24];

	snprintf(text, sizeof(text), "%lu\n", l->irqs);
	return khgpio_read_text(buf, count, ppos, text);
}

static ssize_t direction_read(struct file *f, char __user *buf, size_t count, loff_t *ppos)
{
	struct khgpio_line *l = f->private_data;

	return khgpio_read_text(buf, count, ppos, l->out ? "out\n" : "in\n");
}

static ssize_t pulse_write(struct file *f, const char __user *ubuf, size_t count, loff_t *ppos)
{
	char buf[64];
	unsigned int line, n, us, i;
	ssize_t ret = khgpio_parse(ubuf, count, buf, sizeof(buf));

	if (ret < 0)
		return ret;
	if (sscanf(buf, "%u %u %u", &line, &n, &us) != 3 || line >= ngpio || us > 10000000)
		return -EINVAL;
	mutex_lock(&kg.drive);
	ret = khgpio_drive(line, 0);
	for (i = 0; i < n && ret == 0; i++) {
		if (signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		ret = khgpio_drive(line, 1);
		if (us)
			usleep_range(us, us + us / 8 + 1);
		if (ret == 0)
			ret = khgpio_drive(line, 0);
		if (us)
			usleep_range(us, us + us / 8 + 1);
	}
	mutex_unlock(&kg.drive);
	return ret < 0 ? ret : count;
}

static ssize_t events_read(struct file *f, char __user *buf, size_t count, loff_t *ppos)
{
	size_t size = KHGPIO_EVENTS * 40 + 1, len = 0;
	unsigned int first, i;
	unsigned long flags;
	char *text;
	ssize_t ret;

	text = kmalloc(size, GFP_KERNEL);
	if (!text)
		return -ENOMEM;
	raw_spin_lock_irqsave(&kg.lock, flags);
	first = kg.nevents > KHGPIO_EVENTS ? kg.nevents - KHGPIO_EVENTS : 0;
	for (i = first; i < kg.nevents; i++) {
		struct khgpio_event *e = &kg.events[i % KHGPIO_EVENTS];

		len += scnprintf(text + len, size - len, "%llu %u %d\n",
				 (unsigned long long)e->ns, e->line, e->level);
	}
	raw_spin_unlock_irqrestore(&kg.lock, flags);
	ret = simple_read_from_buffer(buf, count, ppos, text, len);
	kfree(text);
	return ret;
}

static ssize_t number_read(struct file *f, char __user *buf, size_t count, loff_t *ppos)
{
	char text[24];

	snprintf(text, sizeof(text), "%d\n", f->private_data ? kg.chip.base : (int)kg.chip.ngpio);
	return khgpio_read_text(buf, count, ppos, text);
}

static const struct file_operations value_fops = {
	.owner = THIS_MODULE, .open = simple_open, .read = value_read, .write = value_write,
	.llseek = default_llseek,
};
static const struct file_operations irqs_fops = {
	.owner = THIS_MODULE, .open = simple_open, .read = irqs_read, .llseek = default_llseek,
};
static const struct file_operations direction_fops = {
	.owner = THIS_MODULE, .open = simple_open, .read = direction_read, .llseek = default_llseek,
};
static const struct file_operations pulse_fops = {
	.owner = THIS_MODULE, .open = simple_open, .write = pulse_write, .llseek = default_llseek,
};
static const struct file_operations events_fops = {
	.owner = THIS_MODULE, .open = simple_open, .read = events_read, .llseek = default_llseek,
};
static const struct file_operations number_fops = {
	.owner = THIS_MODULE, .open = simple_open, .read = number_read, .llseek = default_llseek,
};

static void khgpio_debugfs(void)
{
	unsigned int i;
	char name[16];

	kg.dir = debugfs_create_dir("khgpio", NULL);
	debugfs_create_file("base", 0444, kg.dir, (void *)1, &number_fops);
	debugfs_create_file("ngpio", 0444, kg.dir, NULL, &number_fops);
	debugfs_create_file("pulse", 0200, kg.dir, NULL, &pulse_fops);
	debugfs_create_file("events", 0444, kg.dir, NULL, &events_fops);
	for (i = 0; i < ngpio; i++) {
		struct dentry *d;

		snprintf(name, sizeof(name), "line%u", i);
		d = debugfs_create_dir(name, kg.dir);
		debugfs_create_file("value", 0644, d, &kg.line[i], &value_fops);
		debugfs_create_file("irqs", 0444, d, &kg.line[i], &irqs_fops);
		debugfs_create_file("direction", 0444, d, &kg.line[i], &direction_fops);
	}
}

/* --- module ---------------------------------------------------------------------------- */

static void khgpio_free_irqs(void)
{
	unsigned int i;

	for (i = 0; i < ngpio; i++)
		if (kg.line[i].virq)
			irq_dispose_mapping(kg.line[i].virq);
	irq_domain_remove(kg.domain);
	irq_domain_free_fwnode(kg.fwnode);
}

static int __init khgpio_init(void)
{
	unsigned int i;
	int ret;

	if (ngpio < 1 || ngpio > KHGPIO_MAX_LINES) {
		pr_err("khgpio: ngpio must be 1-%d\n", KHGPIO_MAX_LINES);
		return -EINVAL;
	}
	raw_spin_lock_init(&kg.lock);
	mutex_init(&kg.drive);
	init_irq_work(&kg.work, khgpio_irq_work);

	kg.fwnode = irq_domain_alloc_named_fwnode("khgpio");
	if (!kg.fwnode)
		return -ENOMEM;
	kg.domain = irq_domain_create_linear(kg.fwnode, ngpio, &khgpio_domain_ops, NULL);
	if (!kg.domain) {
		irq_domain_free_fwnode(kg.fwnode);
		return -ENOMEM;
	}
	for (i = 0; i < ngpio; i++) {
		kg.line[i].index = i;
		kg.line[i].masked = true;
		kg.line[i].type = IRQ_TYPE_EDGE_BOTH;	/* until a request says otherwise */
		kg.line[i].virq = irq_create_mapping(kg.domain, i);
		if (!kg.line[i].virq) {
			khgpio_free_irqs();
			return -ENOMEM;
		}
	}

	kg.chip.label = "khgpio";
	kg.chip.owner = THIS_MODULE;
	kg.chip.base = base;
	kg.chip.ngpio = ngpio;
	kg.chip.can_sleep = false;
	kg.chip.get = khgpio_get;
	kg.chip.set = khgpio_set;
	kg.chip.direction_input = khgpio_direction_input;
	kg.chip.direction_output = khgpio_direction_output;
	kg.chip.get_direction = khgpio_get_direction;
	kg.chip.to_irq = khgpio_to_irq;
	ret = gpiochip_add_data(&kg.chip, NULL);
	if (ret) {
		pr_err("khgpio: cannot add the chip at base %d: %d\n", base, ret);
		khgpio_free_irqs();
		return ret;
	}
	khgpio_debugfs();
	pr_info("khgpio: %u lines at GPIO %d-%d, irqs %u-%u\n", ngpio, kg.chip.base,
		kg.chip.base + ngpio - 1, kg.line[0].virq, kg.line[ngpio - 1].virq);
	return 0;
}

static void __exit khgpio_exit(void)
{
	debugfs_remove_recursive(kg.dir);
	gpiochip_remove(&kg.chip);
	irq_work_sync(&kg.work);
	khgpio_free_irqs();
	pr_info("khgpio: removed\n");
}

module_init(khgpio_init);
module_exit(khgpio_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness");
MODULE_DESCRIPTION("kharness virtual GPIO controller with interrupts, driven through debugfs");
