#![no_main]
// The first byte picks the parser: a create body, or a list query string.
libfuzzer_sys::fuzz_target!(|data: &[u8]| match data.split_first() {
    Some((k, rest)) if k % 2 == 0 => executor_api::executions::fuzz_create_body(rest),
    Some((_, rest)) => executor_api::list::fuzz_query(rest),
    None => {}
});
