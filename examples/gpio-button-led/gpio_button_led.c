// SPDX-License-Identifier: GPL-2.0
/*
 * gpio_button_led: a button interrupt that toggles an LED, in the style of the LKMPG's
 * bottom-half example (button on one GPIO, LED on another, legacy global GPIO numbers).
 *
 * Each rising edge on the button line raises an interrupt; the handler counts the press and
 * toggles the LED. The press count is /sys/module/gpio_button_led/parameters/presses.
 *
 * Under kharness, the lines belong to the kharness virtual GPIO controller ([gpio] in
 * kharness.toml), which the checks drive and read back; on a board they would be real pins.
 */
#include <linux/module.h>
#include <linux/gpio.h>
#include <linux/interrupt.h>
#include <linux/spinlock.h>

static int led_gpio = 4;
module_param(led_gpio, int, 0444);
MODULE_PARM_DESC(led_gpio, "global GPIO number of the LED (an output)");

static int button_gpio = 17;
module_param(button_gpio, int, 0444);
MODULE_PARM_DESC(button_gpio, "global GPIO number of the button (an input, rising edge)");

static unsigned int presses;
module_param(presses, uint, 0444);
MODULE_PARM_DESC(presses, "button presses seen (read-only)");

static int button_irq = -1;
static int led_on;
static DEFINE_SPINLOCK(lock);

static irqreturn_t button_isr(int irq, void *data)
{
	unsigned long flags;

	spin_lock_irqsave(&lock, flags);
	presses++;
	led_on = !led_on;
	gpio_set_value(led_gpio, led_on);
	spin_unlock_irqrestore(&lock, flags);
	return IRQ_HANDLED;
}

static int __init button_led_init(void)
{
	int ret;

	ret = gpio_request(led_gpio, "led");
	if (ret) {
		pr_err("gpio_button_led: cannot request LED GPIO %d: %d\n", led_gpio, ret);
		return ret;
	}
	ret = gpio_direction_output(led_gpio, 0);
	if (ret)
		goto free_led;
	ret = gpio_request(button_gpio, "button");
	if (ret) {
		pr_err("gpio_button_led: cannot request button GPIO %d: %d\n", button_gpio, ret);
		goto free_led;
	}
	ret = gpio_direction_input(button_gpio);
	if (ret)
		goto free_button;
	button_irq = gpio_to_irq(button_gpio);
	if (button_irq < 0) {
		ret = button_irq;
		pr_err("gpio_button_led: GPIO %d has no interrupt: %d\n", button_gpio, ret);
		goto free_button;
	}
	ret = request_irq(button_irq, button_isr, IRQF_TRIGGER_RISING, "gpio_button_led", NULL);
	if (ret) {
		pr_err("gpio_button_led: cannot request IRQ %d: %d\n", button_irq, ret);
		goto free_button;
	}
	pr_info("gpio_button_led: button GPIO %d (IRQ %d) toggles LED GPIO %d\n",
		button_gpio, button_irq, led_gpio);
	return 0;

free_button:
	gpio_free(button_gpio);
free_led:
	gpio_free(led_gpio);
	return ret;
}

static void __exit button_led_exit(void)
{
	free_irq(button_irq, NULL);
	gpio_set_value(led_gpio, 0);
	gpio_free(button_gpio);
	gpio_free(led_gpio);
	pr_info("gpio_button_led: %u press(es), LED off\n", presses);
}

module_init(button_led_init);
module_exit(button_led_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kharness examples");
MODULE_DESCRIPTION("Button interrupt toggles an LED (legacy GPIO numbers)");
