//! Simulated publisher traffic: seeded, realistic OpenRTB 2.6 bid requests
//! (sites and apps, banner/video/native, 1–4 imps, floors, a mix of tmax), or
//! a replay of JSON files from a directory, pre-encoded into a pool of bodies
//! so that building requests stays off the measured path.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// What the generated traffic looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMix {
    /// Seed: the same seed gives the same bodies.
    pub seed: u64,
    /// Fewest imps per request (at least 1).
    pub imps_min: u32,
    /// Most imps per request.
    pub imps_max: u32,
    /// Relative weight of banner imps.
    pub banner: f64,
    /// Relative weight of video imps.
    pub video: f64,
    /// Relative weight of native imps.
    pub native: f64,
    /// Share of publishers that are apps rather than sites (0..=1).
    pub app_share: f64,
    /// tmax values to draw from, in ms.
    pub tmax_ms: Vec<u64>,
    /// Number of distinct publishers.
    pub publishers: u32,
    /// Lowest and highest bid floor in USD CPM.
    pub bidfloor: (f64, f64),
    /// Number of distinct pre-encoded bodies.
    pub pool: usize,
}

impl Default for RequestMix {
    fn default() -> Self {
        RequestMix {
            seed: 42,
            imps_min: 1,
            imps_max: 4,
            banner: 0.6,
            video: 0.25,
            native: 0.15,
            app_share: 0.4,
            tmax_ms: vec![80, 120, 200],
            publishers: 200,
            bidfloor: (0.05, 2.5),
            pool: 4096,
        }
    }
}

/// The request id every generated body carries before [`BodyPool::body`]
/// stamps the sequence number into its 16 hex digits.
const ID_PLACEHOLDER: &str = "perf-0000000000000000";
const ID_DIGITS: usize = 16;

#[derive(Debug, Clone)]
struct Template {
    bytes: Bytes,
    // Offset of the 16 hex digits of the request id, when the id can be stamped.
    id_digits_at: Option<usize>,
}

/// Pre-encoded request bodies, handed out in turn.
#[derive(Debug, Clone)]
pub struct BodyPool {
    templates: Vec<Template>,
    source: String,
}

impl BodyPool {
    /// Generates `mix.pool` bodies from the mix.
    pub fn generate(mix: &RequestMix) -> anyhow::Result<BodyPool> {
        if mix.pool == 0 {
            bail!("requests.pool: must be at least 1");
        }
        let generator = Generator::new(mix)?;
        let mut rng = SmallRng::seed_from_u64(mix.seed);
        let mut templates = Vec::with_capacity(mix.pool);
        for _ in 0..mix.pool {
            let value = generator.request(&mut rng);
            let bytes = serde_json::to_vec(&value).context("encoding a generated request")?;
            let marker = format!("\"id\":\"{ID_PLACEHOLDER}\"");
            let id_digits_at =
                find(&bytes, marker.as_bytes()).map(|at| at + marker.len() - 1 - ID_DIGITS);
            templates.push(Template {
                bytes: Bytes::from(bytes),
                id_digits_at,
            });
        }
        Ok(BodyPool {
            templates,
            source: format!("generated (seed {}, {} bodies)", mix.seed, mix.pool),
        })
    }

    /// Loads every `*.json` file of `dir`, in name order, to be sent as is
    /// (their request ids repeat when the run outlasts the files).
    pub fn replay(dir: &Path) -> anyhow::Result<BodyPool> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading replay directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
        paths.sort();
        if paths.is_empty() {
            bail!("replay directory {} has no *.json files", dir.display());
        }
        let mut templates = Vec::with_capacity(paths.len());
        for p in &paths {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            templates.push(Template {
                bytes: Bytes::from(bytes),
                id_digits_at: None,
            });
        }
        Ok(BodyPool {
            templates,
            source: format!("replay of {} files from {}", paths.len(), dir.display()),
        })
    }

    /// Number of distinct bodies.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether the pool is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Where the bodies came from, for the report.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The body of the `n`-th request of a run: pool entry `n % len`, with
    /// `n` stamped into the request id of generated bodies so ids are unique.
    pub fn body(&self, n: u64) -> Bytes {
        let t = &self.templates[(n % self.templates.len() as u64) as usize];
        match t.id_digits_at {
            None => t.bytes.clone(),
            Some(at) => {
                // A copy of a ~1 KB body costs far less than the request itself.
                let mut v = t.bytes.to_vec();
                let digits = format!("{n:016x}");
                v[at..at + ID_DIGITS].copy_from_slice(digits.as_bytes());
                Bytes::from(v)
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct Publisher {
    id: String,
    name: String,
    domain: String,
    app: bool,
    cat: &'static str,
}

struct Generator {
    mix: RequestMix,
    publishers: Vec<Publisher>,
}

const CATS: &[&str] = &[
    "IAB1", "IAB2", "IAB3", "IAB9", "IAB12", "IAB17", "IAB19", "IAB20",
];
const COUNTRIES: &[&str] = &["USA", "GBR", "DEU", "FRA", "BRA", "JPN", "IND", "CAN"];
const SIZES: &[(u32, u32)] = &[
    (300, 250),
    (728, 90),
    (320, 50),
    (160, 600),
    (300, 600),
    (970, 250),
];
const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
];

impl Generator {
    fn new(mix: &RequestMix) -> anyhow::Result<Generator> {
        if mix.imps_min == 0 || mix.imps_min > mix.imps_max {
            bail!(
                "requests.imps: need 1 <= min <= max, got {}..{}",
                mix.imps_min,
                mix.imps_max
            );
        }
        if mix.banner < 0.0
            || mix.video < 0.0
            || mix.native < 0.0
            || mix.banner + mix.video + mix.native <= 0.0
        {
            bail!("requests.media: weights must be >= 0 and not all zero");
        }
        if mix.tmax_ms.is_empty() {
            bail!("requests.tmax_ms: needs at least one value");
        }
        if mix.publishers == 0 {
            bail!("requests.publishers: must be at least 1");
        }
        // Publishers come from their own stream so the same seed gives the same
        // publisher set whatever the pool size.
        let mut rng = SmallRng::seed_from_u64(mix.seed ^ 0x9e37_79b9_7f4a_7c15);
        let publishers = (0..mix.publishers)
            .map(|i| {
                let app = rng.gen_bool(mix.app_share.clamp(0.0, 1.0));
                Publisher {
                    id: format!("pub-{i:05}"),
                    name: format!("Publisher {i}"),
                    domain: format!("publisher{i}.example.com"),
                    app,
                    cat: CATS[rng.gen_range(0..CATS.len())],
                }
            })
            .collect();
        Ok(Generator {
            mix: mix.clone(),
            publishers,
        })
    }

    fn request(&self, rng: &mut SmallRng) -> Value {
        let p = &self.publishers[rng.gen_range(0..self.publishers.len())];
        let n_imps = rng.gen_range(self.mix.imps_min..=self.mix.imps_max);
        let imps: Vec<Value> = (1..=n_imps).map(|i| self.imp(rng, i, p)).collect();
        let tmax = self.mix.tmax_ms[rng.gen_range(0..self.mix.tmax_ms.len())];
        let publisher = json!({ "id": p.id, "name": p.name, "domain": p.domain });
        let ua = UAS[rng.gen_range(0..UAS.len())];
        let mobile = p.app || ua.contains("Mobile");
        let ip = format!("203.0.113.{}", rng.gen_range(1..255));
        let mut device = json!({
            "ua": ua,
            "ip": ip,
            "devicetype": if mobile { 4 } else { 2 },
            "os": if ua.contains("iPhone") { "iOS" } else if ua.contains("Android") { "Android" } else { "Windows" },
            "js": 1,
            "language": "en",
            "geo": { "country": COUNTRIES[rng.gen_range(0..COUNTRIES.len())], "type": 2 }
        });
        let mut req = json!({
            "id": ID_PLACEHOLDER,
            "imp": imps,
            "device": device.take(),
            "user": { "id": format!("u-{:016x}", rng.gen::<u64>()) },
            "at": 2,
            "tmax": tmax,
            "cur": ["USD"],
            "source": { "tid": format!("t-{:016x}", rng.gen::<u64>()) },
            "regs": { "coppa": 0 }
        });
        if p.app {
            let bundle = format!("com.example.{}", p.id.replace('-', ""));
            req["app"] = json!({
                "id": format!("app-{}", p.id),
                "name": format!("{} App", p.name),
                "bundle": bundle,
                "storeurl": format!("https://play.google.com/store/apps/details?id={bundle}"),
                "cat": [p.cat],
                "publisher": publisher,
            });
            req["device"]["ifa"] = json!(format!(
                "{:08x}-0000-4000-8000-{:012x}",
                rng.gen::<u32>(),
                rng.gen::<u64>() & 0xffff_ffff_ffff
            ));
        } else {
            req["site"] = json!({
                "id": format!("site-{}", p.id),
                "name": p.name,
                "domain": p.domain,
                "page": format!("https://{}/section{}/article-{}.html", p.domain, rng.gen_range(1..10), rng.gen_range(1..5000)),
                "cat": [p.cat],
                "publisher": publisher,
            });
        }
        req
    }

    fn imp(&self, rng: &mut SmallRng, i: u32, p: &Publisher) -> Value {
        let (lo, hi) = self.mix.bidfloor;
        let floor = if hi > lo { rng.gen_range(lo..hi) } else { lo };
        let floor = (floor * 100.0).round() / 100.0;
        let mut imp = json!({
            "id": i.to_string(),
            "tagid": format!("{}-slot-{}", p.id, i),
            "bidfloor": floor,
            "bidfloorcur": "USD",
            "secure": 1,
        });
        let total = self.mix.banner + self.mix.video + self.mix.native;
        let pick = rng.gen_range(0.0..total);
        if pick < self.mix.banner {
            let (w, h) = SIZES[rng.gen_range(0..SIZES.len())];
            imp["banner"] = json!({ "w": w, "h": h, "format": [{ "w": w, "h": h }], "pos": rng.gen_range(0..4) });
        } else if pick < self.mix.banner + self.mix.video {
            let (w, h) = if p.app { (320, 480) } else { (640, 360) };
            let maxduration = [15, 30, 60][rng.gen_range(0..3)];
            imp["video"] = json!({
                "mimes": ["video/mp4", "video/webm"],
                "minduration": 5,
                "maxduration": maxduration,
                "protocols": [2, 3, 5, 6, 7, 8],
                "w": w,
                "h": h,
                "startdelay": 0,
                "plcmt": 1,
                "linearity": 1,
            });
        } else {
            let native = json!({
                "ver": "1.2",
                "context": 1,
                "plcmttype": 1,
                "assets": [
                    { "id": 1, "required": 1, "title": { "len": 90 } },
                    { "id": 2, "required": 1, "img": { "type": 3, "wmin": 300, "hmin": 250 } },
                    { "id": 3, "required": 0, "data": { "type": 2, "len": 140 } }
                ]
            });
            imp["native"] = json!({ "request": native.to_string(), "ver": "1.2" });
        }
        imp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bodies_and_unique_ids() {
        let mix = RequestMix {
            pool: 64,
            ..RequestMix::default()
        };
        let a = BodyPool::generate(&mix).unwrap();
        let b = BodyPool::generate(&mix).unwrap();
        for n in 0..200 {
            assert_eq!(a.body(n), b.body(n));
        }
        let other = BodyPool::generate(&RequestMix {
            seed: 43,
            ..mix.clone()
        })
        .unwrap();
        assert_ne!(a.body(0), other.body(0));
        let ids: std::collections::HashSet<String> = (0..200)
            .map(|n| {
                serde_json::from_slice::<Value>(&a.body(n)).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 200);
    }

    #[test]
    fn mix_covers_sites_apps_and_all_media() {
        let pool = BodyPool::generate(&RequestMix {
            pool: 500,
            ..RequestMix::default()
        })
        .unwrap();
        let (mut site, mut app, mut banner, mut video, mut native, mut multi) = (0, 0, 0, 0, 0, 0);
        let mut tmax = std::collections::BTreeSet::new();
        for n in 0..pool.len() as u64 {
            let v: Value = serde_json::from_slice(&pool.body(n)).unwrap();
            site += v.get("site").is_some() as u32;
            app += v.get("app").is_some() as u32;
            let imps = v["imp"].as_array().unwrap();
            multi += (imps.len() > 1) as u32;
            assert!((1..=4).contains(&imps.len()));
            for imp in imps {
                banner += imp.get("banner").is_some() as u32;
                video += imp.get("video").is_some() as u32;
                native += imp.get("native").is_some() as u32;
                assert!(imp["bidfloor"].as_f64().unwrap() > 0.0);
            }
            tmax.insert(v["tmax"].as_u64().unwrap());
        }
        assert!(site > 0 && app > 0 && banner > 0 && video > 0 && native > 0 && multi > 0);
        assert_eq!(tmax.into_iter().collect::<Vec<_>>(), vec![80, 120, 200]);
    }

    #[test]
    fn replay_cycles_through_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), br#"{"id":"b"}"#).unwrap();
        std::fs::write(dir.path().join("a.json"), br#"{"id":"a"}"#).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let pool = BodyPool::replay(dir.path()).unwrap();
        assert_eq!(pool.len(), 2);
        assert_eq!(&pool.body(0)[..], br#"{"id":"a"}"#);
        assert_eq!(&pool.body(3)[..], br#"{"id":"b"}"#);
        assert!(BodyPool::replay(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn bad_mix_is_refused() {
        assert!(BodyPool::generate(&RequestMix {
            imps_min: 3,
            imps_max: 2,
            ..RequestMix::default()
        })
        .is_err());
        assert!(BodyPool::generate(&RequestMix {
            tmax_ms: vec![],
            ..RequestMix::default()
        })
        .is_err());
    }
}
