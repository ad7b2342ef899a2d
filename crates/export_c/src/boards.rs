//! Memory and clock of common TinyML boards, for `tinyq report --device NAME`.
//!
//! Numbers are the on-chip figures of the microcontroller's datasheet (plus the board's
//! flash when the chip has none on die). `sram_bytes` is the total on-chip RAM the datasheet
//! lists for data (TCM included, backup RAM excluded); firmware, stacks and RTOS/radio stacks
//! take part of it, so a model's arena must fit in less. External PSRAM/SDRAM is named in
//! `note`, never counted.

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// One development board (or module) and the numbers a deployment check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// Display name.
    pub name: &'static str,
    /// Other spellings accepted by [`find_board`] (compared without case and punctuation).
    pub aliases: &'static [&'static str],
    /// Microcontroller part.
    pub mcu: &'static str,
    /// CPU core(s) that would run the model.
    pub core: &'static str,
    /// Maximum clock of that core in MHz.
    pub clock_mhz: u32,
    /// On-chip SRAM in bytes.
    pub sram_bytes: u64,
    /// Program flash in bytes (on-chip, or the board's external flash when the chip has none).
    pub flash_bytes: u64,
    /// Where the numbers come from: document names and addresses.
    pub datasheet: &'static str,
    /// Caveats: external memory, usable-RAM remarks.
    pub note: &'static str,
}

/// The built-in board table.
pub fn boards() -> &'static [Board] {
    BOARDS
}

/// Looks a board up by name or alias, ignoring case, spaces, `-`, `_`, `/` and `.`.
pub fn find_board(name: &str) -> Option<&'static Board> {
    let key = normalize(name);
    if key.is_empty() {
        return None;
    }
    BOARDS.iter().find(|b| normalize(b.name) == key || b.aliases.iter().any(|a| normalize(a) == key))
}

fn normalize(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

static BOARDS: &[Board] = &[
    Board {
        name: "Arduino Nano 33 BLE Sense",
        aliases: &["nano33ble", "nano33blesense", "nano33blesenserev2", "nrf52840", "ABX00031"],
        mcu: "Nordic nRF52840",
        core: "Arm Cortex-M4F",
        clock_mhz: 64,
        sram_bytes: 256 * KIB,
        flash_bytes: MIB,
        datasheet: "Nordic Semiconductor, nRF52840 Product Specification v1.7 \
                    (https://docs.nordicsemi.com/bundle/ps_nrf52840/page/keyfeatures_html5.html); \
                    Arduino ABX00031 datasheet (https://docs.arduino.cc/resources/datasheets/ABX00031-datasheet.pdf)",
        note: "the BLE SoftDevice/Mbed OS use part of the 256 KiB",
    },
    Board {
        name: "Arduino Nano RP2040 Connect",
        aliases: &["nano rp2040", "nanorp2040connect", "ABX00053"],
        mcu: "Raspberry Pi RP2040",
        core: "Arm Cortex-M0+ (dual core)",
        clock_mhz: 133,
        sram_bytes: 264 * KIB,
        flash_bytes: 16 * MIB,
        datasheet: "Raspberry Pi Ltd, RP2040 Datasheet (https://datasheets.raspberrypi.com/rp2040/rp2040-datasheet.pdf); \
                    Arduino ABX00053 datasheet (https://docs.arduino.cc/resources/datasheets/ABX00053-datasheet.pdf)",
        note: "flash is the board's 16 MB external QSPI NOR (AT25SF128A); the RP2040 has no on-chip flash; no FPU",
    },
    Board {
        name: "Raspberry Pi Pico",
        aliases: &["pico", "rpipico", "rp2040"],
        mcu: "Raspberry Pi RP2040",
        core: "Arm Cortex-M0+ (dual core)",
        clock_mhz: 133,
        sram_bytes: 264 * KIB,
        flash_bytes: 2 * MIB,
        datasheet: "Raspberry Pi Ltd, RP2040 Datasheet (https://datasheets.raspberrypi.com/rp2040/rp2040-datasheet.pdf); \
                    Raspberry Pi Pico Datasheet (https://datasheets.raspberrypi.com/pico/pico-datasheet.pdf)",
        note: "flash is the board's 2 MB external QSPI NOR (W25Q16JV); no FPU",
    },
    Board {
        name: "Arduino Uno R4",
        aliases: &["unor4", "uno r4 minima", "uno r4 wifi", "ra4m1", "ABX00080", "ABX00087"],
        mcu: "Renesas RA4M1 (R7FA4M1AB3CFM)",
        core: "Arm Cortex-M4F",
        clock_mhz: 48,
        sram_bytes: 32 * KIB,
        flash_bytes: 256 * KIB,
        datasheet: "Renesas, RA4M1 Group Datasheet R01DS0355EU \
                    (https://www.renesas.com/en/document/dst/ra4m1-group-datasheet); \
                    Arduino ABX00080 (Uno R4 Minima) datasheet (https://docs.arduino.cc/resources/datasheets/ABX00080-datasheet.pdf)",
        note: "32 KiB SRAM only fits very small models",
    },
    Board {
        name: "ESP32",
        aliases: &["esp32dev", "esp32-devkitc", "esp32-wroom-32", "esp32wroom32e", "esp32-d0wd"],
        mcu: "Espressif ESP32 (ESP32-D0WD-V3 in ESP32-WROOM-32E)",
        core: "Xtensa LX6 (dual core)",
        clock_mhz: 240,
        sram_bytes: 520 * KIB,
        flash_bytes: 4 * MIB,
        datasheet: "Espressif, ESP32 Series Datasheet v4.x \
                    (https://www.espressif.com/sites/default/files/documentation/esp32_datasheet_en.pdf); \
                    ESP32-WROOM-32E Datasheet \
                    (https://www.espressif.com/sites/default/files/documentation/esp32-wroom-32e_esp32-wroom-32ue_datasheet_en.pdf)",
        note: "flash is the module's 4 MB SPI flash; Wi-Fi/BT and FreeRTOS leave roughly 300 KiB of heap; \
               WROVER modules add 4-8 MB PSRAM",
    },
    Board {
        name: "ESP32-S3",
        aliases: &["esp32-s3-devkitc-1", "esp32-s3-wroom-1", "esp32s3eye"],
        mcu: "Espressif ESP32-S3 (ESP32-S3-WROOM-1-N8R8)",
        core: "Xtensa LX7 (dual core, vector extensions)",
        clock_mhz: 240,
        sram_bytes: 512 * KIB,
        flash_bytes: 8 * MIB,
        datasheet: "Espressif, ESP32-S3 Series Datasheet \
                    (https://www.espressif.com/sites/default/files/documentation/esp32-s3_datasheet_en.pdf); \
                    ESP32-S3-WROOM-1 Datasheet \
                    (https://www.espressif.com/sites/default/files/documentation/esp32-s3-wroom-1_wroom-1u_datasheet_en.pdf)",
        note: "flash is the module's 8 MB (N8 variants); R8 variants add 8 MB octal PSRAM",
    },
    Board {
        name: "STM32F746 Discovery",
        aliases: &["stm32f746gdiscovery", "32f746gdiscovery", "disco_f746ng", "stm32f746", "stm32f746ng"],
        mcu: "STMicroelectronics STM32F746NGH6",
        core: "Arm Cortex-M7 (FPU)",
        clock_mhz: 216,
        sram_bytes: 320 * KIB,
        flash_bytes: MIB,
        datasheet: "STMicroelectronics, DS10916 STM32F745xx STM32F746xx datasheet \
                    (https://www.st.com/resource/en/datasheet/stm32f746ng.pdf); \
                    UM1907 Discovery kit for STM32F7 Series user manual",
        note: "320 KiB includes 64 KiB DTCM (plus 16 KiB ITCM not counted); \
               the board adds 8 MB SDRAM and 16 MB QSPI flash",
    },
    Board {
        name: "STM32L4R5 Nucleo",
        aliases: &["nucleo-l4r5zi", "stm32l4r5", "stm32l4r5zi"],
        mcu: "STMicroelectronics STM32L4R5ZIT6",
        core: "Arm Cortex-M4F",
        clock_mhz: 120,
        sram_bytes: 640 * KIB,
        flash_bytes: 2 * MIB,
        datasheet: "STMicroelectronics, DS12023 STM32L4R5xx STM32L4R7xx STM32L4R9xx datasheet \
                    (https://www.st.com/resource/en/datasheet/stm32l4r5zi.pdf); \
                    UM2179 STM32 Nucleo-144 boards user manual",
        note: "SRAM1 192 KiB + SRAM2 64 KiB + SRAM3 384 KiB",
    },
    Board {
        name: "STM32H747 / Portenta H7",
        aliases: &["portentah7", "portenta_h7_m7", "stm32h747", "stm32h747xi", "stm32h747idisco", "ABX00042"],
        mcu: "STMicroelectronics STM32H747XIH6",
        core: "Arm Cortex-M7 (double-precision FPU) + Cortex-M4 at 240 MHz",
        clock_mhz: 480,
        sram_bytes: 1056 * KIB,
        flash_bytes: 2 * MIB,
        datasheet: "STMicroelectronics, DS12930 STM32H747xI/G datasheet \
                    (https://www.st.com/resource/en/datasheet/stm32h747xi.pdf); \
                    Arduino ABX00042 Portenta H7 datasheet (https://docs.arduino.cc/resources/datasheets/ABX00042-datasheet.pdf)",
        note: "864 KiB user SRAM + 192 KiB TCM, split over several buses (the largest block is 512 KiB AXI SRAM); \
               the Portenta H7 adds 8 MB SDRAM and 16 MB QSPI flash",
    },
    Board {
        name: "SparkFun Edge / Apollo3",
        aliases: &["sparkfun edge", "edge", "apollo3", "apollo3blue", "artemis", "sparkfun artemis"],
        mcu: "Ambiq Apollo3 Blue",
        core: "Arm Cortex-M4F",
        clock_mhz: 48,
        sram_bytes: 384 * KIB,
        flash_bytes: MIB,
        datasheet: "Ambiq Micro, Apollo3 Blue MCU Datasheet \
                    (https://ambiq.com/wp-content/uploads/2020/10/Apollo3-Blue-SoC-Datasheet.pdf); \
                    SparkFun Edge hookup guide (https://learn.sparkfun.com/tutorials/sparkfun-edge-hookup-guide)",
        note: "48 MHz nominal, 96 MHz in TurboSPOT burst mode",
    },
    Board {
        name: "nRF5340",
        aliases: &["nrf5340 dk", "nrf5340_cpuapp"],
        mcu: "Nordic nRF5340 (application core)",
        core: "Arm Cortex-M33 (FPU, DSP)",
        clock_mhz: 128,
        sram_bytes: 512 * KIB,
        flash_bytes: MIB,
        datasheet: "Nordic Semiconductor, nRF5340 Product Specification v1.x \
                    (https://docs.nordicsemi.com/bundle/ps_nrf5340/page/keyfeatures_html5.html)",
        note: "application core figures; the network core has its own 64 MHz Cortex-M33, 256 KiB flash, 64 KiB RAM",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_and_punctuation_insensitive() {
        assert_eq!(find_board("esp32").map(|b| b.name), Some("ESP32"));
        assert_eq!(find_board("ESP32-S3").map(|b| b.name), Some("ESP32-S3"));
        assert_eq!(find_board("esp32_s3").map(|b| b.name), Some("ESP32-S3"));
        assert_eq!(find_board("Portenta H7").map(|b| b.name), Some("STM32H747 / Portenta H7"));
        assert_eq!(find_board("NANO33BLE").map(|b| b.name), Some("Arduino Nano 33 BLE Sense"));
        assert_eq!(find_board("pico").map(|b| b.name), Some("Raspberry Pi Pico"));
        assert_eq!(find_board("disco_f746ng").map(|b| b.name), Some("STM32F746 Discovery"));
        assert!(find_board("").is_none());
        assert!(find_board("esp8266").is_none());
    }

    #[test]
    fn table_is_complete_and_unambiguous() {
        assert!(boards().len() >= 10);
        let mut keys = std::collections::HashSet::new();
        for b in boards() {
            assert!(b.sram_bytes >= 32 * KIB && b.flash_bytes >= 256 * KIB && b.clock_mhz >= 48, "{}", b.name);
            assert!(b.datasheet.contains("http"), "{} names no datasheet address", b.name);
            assert!(!b.core.is_empty() && !b.mcu.is_empty());
            for k in std::iter::once(b.name).chain(b.aliases.iter().copied()) {
                assert!(keys.insert(normalize(k)), "`{k}` names two boards");
                assert_eq!(find_board(k).map(|f| f.name), Some(b.name));
            }
        }
        for want in [
            "nano33ble",
            "nanorp2040connect",
            "pico",
            "unor4",
            "esp32",
            "esp32s3",
            "stm32f746",
            "nucleol4r5zi",
            "portentah7",
            "apollo3",
            "nrf5340",
        ] {
            assert!(find_board(want).is_some(), "{want}");
        }
    }
}
