// Stand-in for the Arduino core's Wire (I2C) header, which the TFLM Arduino library includes;
// the generated sketch uses nothing from it.
#ifndef TINYQ_WIRE_STANDIN_H
#define TINYQ_WIRE_STANDIN_H
#include "Arduino.h"
#endif
