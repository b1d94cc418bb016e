// SPDX-License-Identifier: GPL-2.0
/*
 * hello.c - module parameters (after LKMPG hello-5).
 *
 * Demonstrates module_param() for short, int, long and charp values and
 * module_param_array() for an int array with an element count.  Every
 * parameter is visible under /sys/module/hello/parameters/.
 *
 *   insmod hello.ko myint=5 mystring=hi myintarray=1,2
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static short myshort = 1;
static int myint = 420;
static long mylong = 9999;
static char *mystring = "blah";
static int myintarray[2] = { 420, 420 };
static unsigned int arr_argc; /* how many array elements insmod supplied */

module_param(myshort, short, 0444);
MODULE_PARM_DESC(myshort, "A short integer");
module_param(myint, int, 0644);
MODULE_PARM_DESC(myint, "An integer (writable by root through sysfs)");
module_param(mylong, long, 0444);
MODULE_PARM_DESC(mylong, "A long integer");
module_param(mystring, charp, 0444);
MODULE_PARM_DESC(mystring, "A character string");
module_param_array(myintarray, int, &arr_argc, 0444);
MODULE_PARM_DESC(myintarray, "An array of up to two integers");

static int __init hello_init(void)
{
	size_t i;

	pr_info("myshort is %hd\n", myshort);
	pr_info("myint is %d\n", myint);
	pr_info("mylong is %ld\n", mylong);
	pr_info("mystring is %s\n", mystring);
	for (i = 0; i < ARRAY_SIZE(myintarray); i++)
		pr_info("myintarray[%zu] = %d\n", i, myintarray[i]);
	pr_info("got %u arguments for myintarray\n", arr_argc);
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("goodbye\n");
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness");
MODULE_DESCRIPTION("Module parameter demo: short, int, long, charp and int array");
