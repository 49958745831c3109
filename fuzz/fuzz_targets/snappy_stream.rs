#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::snappy_stream(data));
