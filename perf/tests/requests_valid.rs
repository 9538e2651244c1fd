//! Every generated request decodes and validates with the proto crate.

use rtb_perf::requests::{BodyPool, RequestMix};

#[test]
fn generated_requests_decode_and_validate() {
    for seed in [1, 42, 7777] {
        let pool = BodyPool::generate(&RequestMix {
            seed,
            pool: 300,
            ..RequestMix::default()
        })
        .unwrap();
        for n in 0..pool.len() as u64 {
            let body = pool.body(n);
            let req = rtb_proto::decode_request(&body).unwrap_or_else(|e| {
                panic!(
                    "seed {seed} body {n} does not decode: {e:?}\n{}",
                    String::from_utf8_lossy(&body)
                )
            });
            if let Err(v) = rtb_proto::validate_request(&req) {
                panic!(
                    "seed {seed} body {n} is invalid: {v:?}\n{}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
}
