//! Pretrained models without network: a fake Hugging Face cache (the real
//! `models--org--name/{refs/main, blobs/, snapshots/<rev>/}` layout, files linked from blobs)
//! holding a tiny Qwen2 model and a chat-template tokenizer that this test writes; loaded by
//! name with HF_HUB_OFFLINE=1, trained, exported, reloaded; and the bad-model errors.

use crate::common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::*;
use mixscope::train::{Arch, Model, ModelConfig};

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The suite tokenizer with its special tokens renamed as a ChatML model's, so that it has
/// none of mixscope's own markers and the chat format must come from the template.
fn chatml_tokenizer(cache: &Path) -> String {
    let p = mixscope::data::tokenizer::suite_tokenizer(&cache.join("tok"), 512).unwrap();
    std::fs::read_to_string(p)
        .unwrap()
        .replace("<|pad|>", "<|endoftext|>")
        .replace("<|bos|>", "<|unused0|>")
        .replace("<|eos|>", "<|unused1|>")
        .replace("<|user|>", "<|im_start|>")
        .replace("<|assistant|>", "<|im_end|>")
}

fn tiny_qwen(vocab: usize) -> ModelConfig {
    let mut c = ModelConfig::llama(vocab, 32, 64, 2, 4, 2, 256, true);
    c.architecture = Arch::Qwen2;
    c.attention_bias = true;
    c.rope_theta = 1_000_000.0;
    c
}

/// Write a model directory: config.json, model.safetensors (random weights), tokenizer files.
fn write_model_dir(dir: &Path, cache: &Path) -> ModelConfig {
    write_model_dir_of(dir, cache, tiny_qwen)
}

/// [`write_model_dir`] of the model `shape` makes for the tokenizer's vocabulary.
fn write_model_dir_of(dir: &Path, cache: &Path, shape: fn(usize) -> ModelConfig) -> ModelConfig {
    std::fs::create_dir_all(dir).unwrap();
    let tok = chatml_tokenizer(cache);
    let vocab = mixscope::data::tokenizer::Tok::from_json(&tok).map(|t| t.vocab_size()).unwrap_or(512);
    let cfg = shape(vocab);
    let vm = VarMap::new();
    Model::new(&cfg, &vm, &Device::Cpu, DType::F32, 11).unwrap();
    vm.save(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), cfg.to_hf_json()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok).unwrap();
    let tc = serde_json::json!({
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "bos_token": null,
        "chat_template": CHATML,
        "tokenizer_class": "Qwen2Tokenizer",
    });
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
    cfg
}

/// Put a model directory's files into a hub cache as `org/name` at revision HUB_REV, as
/// huggingface_hub lays them out (content in blobs/, snapshot entries are links to them).
fn add_to_cache(hub: &Path, name: &str, files: &Path) {
    let snap = hub_snapshot(hub, "model", name);
    let blobs = snap.parent().and_then(Path::parent).unwrap().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    for e in std::fs::read_dir(files).unwrap() {
        let p = e.unwrap().path();
        let blob = sha(&p);
        std::fs::copy(&p, blobs.join(&blob)).unwrap();
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&blob), snap.join(p.file_name().unwrap())).unwrap();
    }
}

struct Hub {
    _t: tempfile::TempDir,
    root: PathBuf,
    hub: PathBuf,
    cache: PathBuf,
    model_files: PathBuf,
}

fn hub() -> Hub {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let cache = root.join("cache");
    let model_files = root.join("src-model");
    write_model_dir(&model_files, &cache);
    let hub = root.join("hf").join("hub");
    add_to_cache(&hub, "testorg/tiny-qwen", &model_files);
    Hub { _t: t, hub, cache, model_files, root }
}

impl Hub {
    fn cmd(&self) -> std::process::Command {
        let mut c = cmd(&self.cache);
        c.env("HF_HUB_CACHE", &self.hub).env_remove("HF_HOME").env_remove("HF_TOKEN");
        c
    }
    fn train(&self, runs: &Path, sets: &[&str]) -> std::process::Output {
        let fx = fixture("tiny.toml");
        let mut c = self.cmd();
        c.args(["train", fx.to_str().unwrap(), "--runs", runs.to_str().unwrap(), "-q"]);
        for s in sets {
            c.args(["--set", s]);
        }
        c.output().unwrap()
    }
}

fn run_dirs(runs: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(runs)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("run.toml").exists()).collect())
        .unwrap_or_default()
}

fn logits(m: &Model) -> Tensor {
    let ids = Tensor::new(&[[1u32, 17, 42, 99, 5, 250, 3, 8]], &Device::Cpu).unwrap();
    m.logits(&ids).unwrap()
}

#[test]
fn a_hub_model_loads_offline_by_name_trains_exports_and_reloads() {
    let h = hub();
    let runs = h.root.join("runs");
    ok(h.train(&runs, &["model=testorg/tiny-qwen", "max_steps=20", "checkpoint_every=10", "eval_every=10"]));
    let dirs = run_dirs(&runs);
    assert_eq!(dirs.len(), 1, "one run, and no base run of the tiny model: {dirs:?}");
    let run = &dirs[0];
    let toml = std::fs::read_to_string(run.join("run.toml")).unwrap();
    assert!(toml.contains("testorg/tiny-qwen") && toml.contains("source = \"model\""), "{toml}");
    assert_eq!(
        std::fs::read_to_string(run.join("tokenizer_config.json")).unwrap(),
        std::fs::read_to_string(h.model_files.join("tokenizer_config.json")).unwrap(),
        "the model's chat template travels with the run"
    );
    let l = losses(run);
    assert_eq!(l.len(), 20);
    assert!(l.iter().all(|(_, x)| x.is_finite()));
    assert_eq!(last_state(run).as_deref(), Some("finished"));
    let evs = events(run);
    let started = of_kind(&evs, "status")[0]["message"].as_str().unwrap().to_string();
    assert!(started.contains("parameters"), "{started}");

    // Export, then load the export the way a pretrained model is loaded.
    let out = h.root.join("export");
    let o = h.cmd().args(["export", run.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    let said = ok(o);
    assert!(said.contains("step 20"), "{said}");
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert!(out.join(f).exists(), "{f} missing from the export");
    }
    let cfg_text = std::fs::read_to_string(out.join("config.json")).unwrap();
    let cfg = ModelConfig::from_hf_json(&cfg_text).unwrap();
    assert_eq!(cfg, tiny_qwen(cfg.vocab_size));
    let v: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    assert_eq!(v["architectures"][0], "Qwen2ForCausalLM");

    let vm = VarMap::new();
    let reloaded = Model::new(&cfg, &vm, &Device::Cpu, DType::F32, 0).unwrap();
    mixscope::train::pretrained::load_pretrained(&vm, &reloaded, &out, DType::F32).unwrap();
    let ck = mixscope::train::load_varmap_safetensors(
        run.join("checkpoints").join("20").join("model.safetensors"),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let trained = Model::from_varmap_checked(&cfg, &ck).unwrap();
    let (a, b) = (logits(&reloaded), logits(&trained));
    assert_eq!(a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    // ... and transformers itself loads the export (tied: no lm_head tensor in the file) and
    // computes the same logits, where a Python with torch + transformers is at hand.
    match transformers_python() {
        Some(py) => {
            let ids = ["1", "17", "42", "99", "5", "250", "3", "8"];
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hf_logits.py");
            let o = std::process::Command::new(py).arg(script).arg(&out).args(ids).output().unwrap();
            let v: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
            assert_eq!(v["architecture"], "Qwen2ForCausalLM");
            assert_eq!(
                (v["tie_word_embeddings"].as_bool(), v["lm_head_is_embedding"].as_bool()),
                (Some(true), Some(true))
            );
            let theirs: Vec<f32> = v["logits"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().clone())
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let ours = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(theirs.len(), ours.len());
            let worst = ours.iter().zip(&theirs).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "transformers' logits differ from mixscope's by {worst}");
        }
        None => eprintln!("skipped: no Python with torch + transformers (MIXSCOPE_PEER_PYTHON) to load the export"),
    }
    // ... and it differs from the model before training.
    let vm0 = VarMap::new();
    let before = Model::new(&cfg, &vm0, &Device::Cpu, DType::F32, 0).unwrap();
    mixscope::train::pretrained::load_pretrained(&vm0, &before, &h.model_files, DType::F32).unwrap();
    let c = logits(&before);
    assert_ne!(a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), c.flatten_all().unwrap().to_vec1::<f32>().unwrap());

    // The export is itself a model directory mixscope trains from.
    let runs2 = h.root.join("runs2");
    ok(h.train(&runs2, &[&format!("model={}", out.display()), "max_steps=2", "checkpoint_every=2", "eval_every=2"]));
    assert_eq!(losses(&run_dirs(&runs2)[0]).len(), 2);

    // Sharded weights (model.safetensors.index.json and two shards) load the same.
    let sharded = h.root.join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(h.model_files.join(f), sharded.join(f)).unwrap();
    }
    let all = candle_core::safetensors::load(h.model_files.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (i, part) in names.chunks(names.len() / 2 + 1).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let shard: std::collections::HashMap<String, Tensor> =
            part.iter().map(|n| ((*n).clone(), all[*n].clone())).collect();
        candle_core::safetensors::save(&shard, sharded.join(&file)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), serde_json::json!(file));
        }
    }
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();
    let vm_s = VarMap::new();
    let from_shards = Model::new(&cfg, &vm_s, &Device::Cpu, DType::F32, 0).unwrap();
    mixscope::train::pretrained::load_pretrained(&vm_s, &from_shards, &sharded, DType::F32).unwrap();
    assert_eq!(
        logits(&from_shards).flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        c.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let runs3 = h.root.join("runs3");
    ok(h.train(&runs3, &[&format!("model={}", sharded.display()), "max_steps=1", "eval_every=0"]));

    // A second export to the same place is refused; the first is untouched.
    let before_sha = sha(&out.join("model.safetensors"));
    let o = h
        .cmd()
        .args(["export", run.to_str().unwrap(), "--step", "10", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(bad(o).contains("not an empty directory"));
    assert_eq!(sha(&out.join("model.safetensors")), before_sha);
    let o = h.cmd().args(["export", run.to_str().unwrap(), "--step", "7", "--out", "x"]).output().unwrap();
    assert!(bad(o).contains("no checkpoint at step 7 (checkpoints: 10, 20)"));
}

/// A Python with torch and transformers: `MIXSCOPE_PEER_PYTHON`, else `python3` if it has them.
fn transformers_python() -> Option<String> {
    let py = std::env::var("MIXSCOPE_PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let o = std::process::Command::new(&py).args(["-c", "import torch, transformers"]).output().ok()?;
    o.status.success().then_some(py)
}

/// Copy the model files to a local directory and change one thing.
fn broken(h: &Hub, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let d = h.root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(&h.model_files).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
    }
    change(&d);
    d
}

#[test]
fn bad_models_exit_2_naming_the_file_and_nothing_is_created() {
    let h = hub();
    let runs = h.root.join("runs");
    let edit_config = |d: &Path, from: &str, to: &str| {
        let p = d.join("config.json");
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains(from), "{s}");
        std::fs::write(&p, s.replace(from, to)).unwrap();
    };
    let arch = broken(&h, "arch", |d| edit_config(d, "Qwen2ForCausalLM", "MistralForCausalLM"));
    let e = bad(h.train(&runs, &[&format!("model={}", arch.display())]));
    assert!(e.contains("arch/config.json") && e.contains("MistralForCausalLM"), "{e}");

    let shape = broken(&h, "shape", |d| edit_config(d, "\"intermediate_size\": 64", "\"intermediate_size\": 48"));
    let e = bad(h.train(&runs, &[&format!("model={}", shape.display())]));
    assert!(
        e.contains("shape/model.safetensors")
            && e.contains("model.layers.0.mlp.gate_proj.weight")
            && e.contains("[64, 32]")
            && e.contains("[48, 32]"),
        "{e}"
    );

    let notok = broken(&h, "notok", |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    let e = bad(h.train(&runs, &[&format!("model={}", notok.display())]));
    assert!(e.contains("notok") && e.contains("tokenizer.json"), "{e}");

    let nochat = broken(&h, "noeos", |d| std::fs::write(d.join("tokenizer_config.json"), "{}").unwrap());
    let e = bad(h.train(&runs, &[&format!("model={}", nochat.display())]));
    assert!(e.contains("noeos/tokenizer_config.json") && e.contains("eos_token"), "{e}");

    let trunc = broken(&h, "trunc", |d| {
        let p = d.join("model.safetensors");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    let e = bad(h.train(&runs, &[&format!("model={}", trunc.display())]));
    assert!(e.contains("trunc/model.safetensors") && e.contains("past the data"), "{e}");

    let e = bad(h.train(&runs, &["model=testorg/absent"]));
    assert!(e.contains("testorg/absent") && e.contains("not in the Hugging Face cache"), "{e}");

    assert!(run_dirs(&runs).is_empty(), "a bad model creates no run: {:?}", run_dirs(&runs));
}

#[test]
fn the_chat_template_shapes_training_examples() {
    let h = hub();
    let tok = mixscope::data::tokenizer::Tok::load(&h.model_files.join("tokenizer.json")).unwrap();
    let ids = tok.encode_prompt("Hola").unwrap();
    assert_eq!(tok.decode(&ids).unwrap().replace(' ', ""), "user\nHola\nassistant\n".replace(' ', ""));
    let text = tok.inner.decode(&ids, false).unwrap();
    assert!(text.starts_with("<|im_start|>") && text.contains("<|im_start|>"), "{text}");
    let im_end = tok.inner.token_to_id("<|im_end|>").unwrap();
    assert_eq!(tok.eos, im_end);
    assert!(tok.stops.contains(&im_end));
    assert_eq!(tok.pad, tok.inner.token_to_id("<|endoftext|>").unwrap());
    assert_eq!(tok.bos, None);
}

#[test]
fn the_shipped_qwen_config_has_the_papers_hyperparameters_and_trains_from_the_cache() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join("qwen2.5-0.5b-sft.toml");
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["model"]["source"].as_str(), Some("Qwen/Qwen2.5-0.5B"));
    assert_eq!(v["train"]["lr"].as_float(), Some(1e-5));
    assert_eq!(v["train"]["schedule"].as_str(), Some("constant"));
    assert_eq!(v["train"]["batch_size"].as_integer(), Some(64));
    assert_eq!(v["checkpoint"]["every"].as_integer(), Some(50));
    // The tiny stand-in under the real name: the config resolves it offline and trains.
    let h = hub();
    add_to_cache(&h.hub, "Qwen/Qwen2.5-0.5B", &h.model_files);
    let runs = h.root.join("runs");
    let mut c = h.cmd();
    c.args(["train", path.to_str().unwrap(), "--runs", runs.to_str().unwrap(), "-q"]);
    for s in [
        "max_steps=2",
        "batch_size=4",
        "train.grad_accum=2",
        "seq_len=64",
        "eval_every=2",
        "checkpoint_every=2",
        "eval.n=4",
        "eval.generate_n=2",
        "eval.max_new_tokens=4",
        "threads=1",
        "device=cpu",
    ] {
        c.args(["--set", s]);
    }
    ok(c.output().unwrap());
    let run = &run_dirs(&runs)[0];
    assert_eq!(losses(run).len(), 2);
    assert!(!of_kind(&events(run), "eval").is_empty());
}

/// Every run config in `configs/` trains a model the user brings: a tied Qwen2 (as SmolLM2 and
/// Qwen2.5-0.5B are) and an untied Llama, from a hub cache. The demo's `train.freeze` (the
/// token embeddings and the output layer) means the shared embedding matrix in the tied model,
/// which stays as the model had it.
#[test]
fn every_config_trains_a_tied_and_an_untied_model_from_the_cache() {
    let h = hub();
    let llama = h.root.join("src-llama");
    let cfg = write_model_dir_of(&llama, &h.cache, |v| ModelConfig::llama(v, 32, 64, 2, 4, 2, 256, false));
    assert!(!cfg.tie_word_embeddings);
    add_to_cache(&h.hub, "testorg/tiny-llama", &llama);
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut tried = 0;
    for e in std::fs::read_dir(&configs).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_none_or(|x| x != "toml") || text.contains("[grid]") {
            continue; // sweep files name a run config, which is tried itself
        }
        for model in ["testorg/tiny-qwen", "testorg/tiny-llama"] {
            let runs = h.root.join(format!("runs-{}-{}", path.file_stem().unwrap().to_string_lossy(), &model[8..]));
            let mut c = h.cmd();
            c.args(["train", path.to_str().unwrap(), "--runs", runs.to_str().unwrap(), "-q"]);
            for s in [
                &format!("model={model}"),
                "max_steps=2",
                "batch_size=4",
                "train.grad_accum=1",
                "seq_len=64",
                "eval_every=2",
                "checkpoint_every=2",
                "eval.n=4",
                "eval.generate_n=2",
                "eval.max_new_tokens=4",
                "threads=1",
                "device=cpu",
            ] {
                c.args(["--set", s]);
            }
            let o = c.output().unwrap();
            assert!(o.status.success(), "{} with {model}: {}", path.display(), stderr(&o));
            let dirs = run_dirs(&runs);
            assert_eq!(dirs.len(), 1, "--set model= trains the model itself, no base: {dirs:?}");
            let run = &dirs[0];
            assert_eq!(losses(run).len(), 2, "{}", path.display());
            if text.contains("freeze") {
                // The embeddings (the output layer too, when tied) are the model's own.
                let src = if model.ends_with("qwen") { &h.model_files } else { &llama };
                let load = |p: &Path| candle_core::safetensors::load(p, &Device::Cpu).unwrap();
                let (a, b) = (load(&src.join("model.safetensors")), load(&run.join("checkpoints/2/model.safetensors")));
                let emb = |m: &std::collections::HashMap<String, Tensor>| {
                    m["model.embed_tokens.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap()
                };
                assert_eq!(emb(&a), emb(&b), "{} with {model}: frozen embeddings moved", path.display());
            }
            tried += 1;
        }
    }
    assert!(tried >= 6, "demo-base, demo and qwen2.5-0.5b-sft, two models each: {tried}");
}

/// A stand-in for the Hugging Face hub's HTTP endpoints that hf-hub's client calls:
/// `GET /{repo}/resolve/{rev}/{file}` (with `Range`), answering with the `ETag`,
/// `X-Repo-Commit` and `Content-Range` headers the client reads. Unknown paths are 404.
fn fake_hub(files: std::collections::HashMap<String, Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut range_start = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                    range_start = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            log.lock().unwrap().push(path.clone());
            let mut out = stream;
            let Some(body) = files.get(&path) else {
                let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let (a, b) = range_start.unwrap_or((0, None));
            let b = b.unwrap_or(body.len().saturating_sub(1)).min(body.len().saturating_sub(1));
            let part = &body[a.min(body.len())..(b + 1).min(body.len())];
            let etag = {
                use sha2::Digest;
                format!("{:x}", sha2::Sha256::digest(body))
            };
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {HUB_REV}\r\nContent-Range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len(),
                part.len()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(part);
        }
    });
    (addr, seen)
}

use std::sync::{Arc, Mutex};

#[test]
fn a_hub_model_missing_from_the_cache_is_downloaded_then_used_offline() {
    let h = hub();
    let mut files = std::collections::HashMap::new();
    for e in std::fs::read_dir(&h.model_files).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        files.insert(format!("/testorg/remote-qwen/resolve/main/{name}"), std::fs::read(&p).unwrap());
    }
    let (endpoint, seen) = fake_hub(files);
    let cache = h.root.join("fresh-cache");
    let runs = h.root.join("runs");
    let train = |offline: bool| {
        let mut c = h.cmd();
        c.env("HF_HUB_CACHE", &cache).env("HF_ENDPOINT", &endpoint).env("HF_TOKEN", "hf_test_token");
        if !offline {
            c.env_remove("HF_HUB_OFFLINE");
        }
        let fx = fixture("tiny.toml");
        c.args(["train", fx.to_str().unwrap(), "--runs", runs.to_str().unwrap(), "-q"]);
        c.args(["--set", "model=testorg/remote-qwen", "--set", "max_steps=2", "--set", "eval_every=0"]);
        c.output().unwrap()
    };
    ok(train(false));
    let snap = cache.join("models--testorg--remote-qwen").join("snapshots").join(HUB_REV);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert_eq!(sha(&snap.join(f)), sha(&h.model_files.join(f)), "{f} downloaded whole");
    }
    assert_eq!(std::fs::read_to_string(cache.join("models--testorg--remote-qwen/refs/main")).unwrap().trim(), HUB_REV);
    let asked = seen.lock().unwrap().clone();
    assert!(asked.iter().any(|p| p.ends_with("/model.safetensors.index.json")), "{asked:?}");
    // Offline now: the cache alone serves the model; the hub is not asked again.
    let before = seen.lock().unwrap().len();
    ok(train(true));
    assert_eq!(seen.lock().unwrap().len(), before);
    assert_eq!(run_dirs(&runs).len(), 2);
}
