// SPDX-License-Identifier: GPL-2.0
/*
 * khtemp.c - an I2C client driver for "khtemp", a made-up temperature sensor
 * with byte-wide SMBus registers:
 *
 *   0x00  TEMP      the temperature, signed, in degrees Celsius (read-only)
 *   0x01  TEMP_MAX  the alarm threshold, signed, in degrees Celsius
 *   0xfe  ID        0x4b ('K') on a khtemp; probe refuses any other value
 *
 * It binds by name (i2c_device_id), so a device is instantiated from user
 * space with "echo khtemp 0x48 > /sys/bus/i2c/devices/i2c-N/new_device", and
 * it exposes, in the hwmon convention (millidegrees Celsius), on the device:
 *
 *   temp1_input  0444  TEMP, read over SMBus at each read
 *   temp1_max    0644  TEMP_MAX; a write is rounded to whole degrees and
 *                      written to the chip (garbage: -EINVAL)
 *
 * No chip is needed: the kernel's i2c-stub (chip_addr=0x48) answers for one,
 * its registers set with i2cset.
 */
#include <linux/device.h>
#include <linux/i2c.h>
#include <linux/kernel.h>
#include <linux/minmax.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/sysfs.h>
#include <linux/version.h>

#define KHTEMP_REG_TEMP		0x00
#define KHTEMP_REG_TEMP_MAX	0x01
#define KHTEMP_REG_ID		0xfe
#define KHTEMP_ID		0x4b

/* One register as millidegrees, or a negative errno from the bus. */
static int khtemp_read_mc(struct i2c_client *client, u8 reg, int *mc)
{
	int v = i2c_smbus_read_byte_data(client, reg);

	if (v < 0)
		return v;
	*mc = (s8)v * 1000;
	return 0;
}

static ssize_t khtemp_show_reg(struct device *dev, u8 reg, char *buf)
{
	int mc, ret;

	ret = khtemp_read_mc(to_i2c_client(dev), reg, &mc);
	if (ret)
		return ret;
	return sysfs_emit(buf, "%d\n", mc);
}

static ssize_t temp1_input_show(struct device *dev, struct device_attribute *attr,
				char *buf)
{
	return khtemp_show_reg(dev, KHTEMP_REG_TEMP, buf);
}

static ssize_t temp1_max_show(struct device *dev, struct device_attribute *attr,
			      char *buf)
{
	return khtemp_show_reg(dev, KHTEMP_REG_TEMP_MAX, buf);
}

static ssize_t temp1_max_store(struct device *dev, struct device_attribute *attr,
			       const char *buf, size_t count)
{
	long mc;
	int ret;

	ret = kstrtol(buf, 10, &mc);
	if (ret)
		return ret;
	/* What the register can hold, in whole degrees. */
	mc = clamp_val(mc, -128000, 127000);
	ret = i2c_smbus_write_byte_data(to_i2c_client(dev), KHTEMP_REG_TEMP_MAX,
					(u8)(s8)DIV_ROUND_CLOSEST(mc, 1000));
	return ret ? ret : count;
}

static DEVICE_ATTR_RO(temp1_input);
static DEVICE_ATTR_RW(temp1_max);

static struct attribute *khtemp_attrs[] = {
	&dev_attr_temp1_input.attr,
	&dev_attr_temp1_max.attr,
	NULL,
};
ATTRIBUTE_GROUPS(khtemp);

static int khtemp_probe(struct i2c_client *client)
{
	int id;

	if (!i2c_check_functionality(client->adapter, I2C_FUNC_SMBUS_BYTE_DATA))
		return -ENODEV;

	id = i2c_smbus_read_byte_data(client, KHTEMP_REG_ID);
	if (id < 0)
		return id;
	if (id != KHTEMP_ID) {
		/* -ENODEV: the driver core leaves the device unbound, quietly. */
		dev_info(&client->dev, "no khtemp here (id 0x%02x, expected 0x%02x)\n",
			 id, KHTEMP_ID);
		return -ENODEV;
	}
	dev_info(&client->dev, "khtemp at 0x%02x on %s\n", client->addr,
		 client->adapter->name);
	return 0;
}

static const struct i2c_device_id khtemp_id[] = {
	{ "khtemp", 0 },
	{ }
};
MODULE_DEVICE_TABLE(i2c, khtemp_id);

static struct i2c_driver khtemp_driver = {
	.driver = {
		.name = "khtemp",
		/* Created by the driver core once probe succeeds, removed on unbind. */
		.dev_groups = khtemp_groups,
	},
	/* probe lost its i2c_device_id argument in 6.3; probe_new was removed in 6.6. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	.probe = khtemp_probe,
#else
	.probe_new = khtemp_probe,
#endif
	.id_table = khtemp_id,
};
module_i2c_driver(khtemp_driver);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness");
MODULE_DESCRIPTION("khtemp: an I2C temperature sensor driver, tested on i2c-stub");
