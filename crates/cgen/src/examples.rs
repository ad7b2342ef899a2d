//! The examples written beside the model: `main.c` (a C99 program that runs the model once; on
//! tinyq's Cortex-M4 harness it prints through the harness's `tq_log`) and `<name>.ino` (an
//! Arduino sketch running it in a loop with `kBufferSize`, the planned arena, printed).

/// `main.c`.
pub fn main_c(name: &str) -> String {
    let up = name.to_ascii_uppercase();
    format!(
        "/* {name}: example program, written by tinyq; edit freely.\n \
         * Runs the model once on the input that means 0.0 everywhere and prints the largest output\n \
         * element. Lines go to tq_log(), which prints to stdout unless the platform supplies its own\n \
         * (tinyq's Cortex-M4 harness prints over semihosting). Build: cc -std=c99 *.c\n \
         * Arduino builds (ARDUINO defined) use {name}.ino instead. */\n\
         #ifndef ARDUINO\n\
         #include <stdio.h>\n#include <string.h>\n#include \"{name}.h\"\n\n\
         __attribute__((weak)) void tq_log(const char *line) {{ fputs(line, stdout); }}\n\n\
         static int8_t input[{up}_INPUT_SIZE];\n\
         static int8_t output[{up}_OUTPUT_SIZE];\n\n\
         int main(void) {{\n\
         \x20 char line[96];\n\
         \x20 int32_t i, best = 0;\n\
         \x20 /* Replace with real data, quantized with {name}_input_scale() and _zero_point(). */\n\
         \x20 memset(input, (int){name}_input_zero_point(), sizeof input);\n\
         \x20 {name}_invoke(input, output);\n\
         \x20 for (i = 1; i < {up}_OUTPUT_SIZE; ++i) {{\n\
         \x20   if (output[i] > output[best]) best = i;\n\
         \x20 }}\n\
         \x20 snprintf(line, sizeof line, \"largest output element %ld (quantized %d), arena %d bytes\\n\", (long)best,\n\
         \x20          (int)output[best], (int){up}_ARENA_SIZE);\n\
         \x20 tq_log(line);\n\
         \x20 return 0;\n\
         }}\n\
         #endif\n"
    )
}

/// `<name>.ino`.
pub fn sketch(name: &str) -> String {
    let up = name.to_ascii_uppercase();
    format!(
        "// {name}: Arduino sketch, written by tinyq; edit freely. Runs the model (plain C, no TensorFlow\n\
         // Lite Micro library needed) in a loop, prints the largest output element and the inference\n\
         // time on the serial port (115200 baud) and toggles LED_BUILTIN. The sketch folder must be\n\
         // named `{name}` and hold the generated .c/.h files.\n\
         #include <Arduino.h>\n#include <string.h>\n\n#include \"{name}.h\"\n\n\
         // The static buffer the model needs for activations and scratch, planned at export (bytes).\n\
         constexpr unsigned long kBufferSize = {up}_ARENA_SIZE;\n\n\
         static int8_t input[{up}_INPUT_SIZE];\n\
         static int8_t output[{up}_OUTPUT_SIZE];\n\
         static bool led = false;\n\n\
         void setup() {{\n\
         \x20 Serial.begin(115200);\n\
         \x20 pinMode(LED_BUILTIN, OUTPUT);\n\
         \x20 // Replace with sensor data, quantized with {name}_input_scale() and _zero_point().\n\
         \x20 memset(input, {name}_input_zero_point(), sizeof input);\n\
         \x20 Serial.print(\"buffer bytes: \");\n\
         \x20 Serial.println(kBufferSize);\n\
         }}\n\n\
         void loop() {{\n\
         \x20 const unsigned long start = micros();\n\
         \x20 {name}_invoke(input, output);\n\
         \x20 const unsigned long elapsed = micros() - start;\n\
         \x20 int best = 0;\n\
         \x20 for (int i = 1; i < {up}_OUTPUT_SIZE; ++i) {{\n\
         \x20   if (output[i] > output[best]) best = i;\n\
         \x20 }}\n\
         \x20 Serial.print(\"largest output element \");\n\
         \x20 Serial.print(best);\n\
         \x20 Serial.print(\", inference us \");\n\
         \x20 Serial.println(elapsed);\n\
         \x20 led = !led;\n\
         \x20 digitalWrite(LED_BUILTIN, led ? HIGH : LOW);\n\
         \x20 delay(1000);\n\
         }}\n"
    )
}
