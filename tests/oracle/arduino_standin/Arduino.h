// A stand-in for the few Arduino core functions tinyq's generated sketch calls, so that the
// sketch can be compiled against a real TFLM Arduino library without a board package. Only
// declarations: the test compiles, it does not link.
#ifndef TINYQ_ARDUINO_STANDIN_H
#define TINYQ_ARDUINO_STANDIN_H
#include <stdint.h>
#include <stddef.h>

#define HIGH 1
#define LOW 0
#define OUTPUT 1
#define LED_BUILTIN 13

unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);

class SerialPort {
 public:
  void begin(unsigned long baud);
  explicit operator bool() const;
  size_t print(const char* text);
  size_t print(int value);
  size_t print(unsigned long value);
  size_t println(const char* text);
  size_t println(int value);
  size_t println(unsigned long value);
  size_t println(double value, int digits);
};
extern SerialPort Serial;
#endif
