#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::smux_frame_decode(data));
