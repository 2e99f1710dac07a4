#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| executor_bundles::fuzzing::bundle_text(data));
