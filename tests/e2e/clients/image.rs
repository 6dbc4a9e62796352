//! Small valid OCI images built here (an OCI image layout written with sha2,
//! layers as tar archives, gzip by `gzip -n`), and pushed with skopeo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::registry::Registry;
use super::{DEFAULT_TIMEOUT, Run, Scratch, clean_command, require, run};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The tag the layout's only manifest carries (`oci:DIR:image`).
const LAYOUT_REF: &str = "image";

/// One layer: a tar archive holding one regular file.
#[derive(Clone, Debug)]
pub enum Layer {
    /// `path` with `contents`, gzip-compressed.
    File { path: String, contents: Vec<u8> },
    /// `path` with `size` incompressible pseudo-random bytes from `seed`,
    /// uncompressed and streamed to disk (never held in memory): for large
    /// layers in benchmarks, such as one of 1 GiB.
    Random { path: String, size: u64, seed: u64 },
}

impl Layer {
    pub fn file(path: &str, contents: impl Into<Vec<u8>>) -> Layer {
        Layer::File {
            path: path.to_owned(),
            contents: contents.into(),
        }
    }

    pub fn random(size: u64, seed: u64) -> Layer {
        Layer::Random {
            path: format!("random-{seed}.bin"),
            size,
            seed,
        }
    }

    /// `count` small gzip layers, `layer-<i>.txt` each, all different.
    pub fn many(count: usize) -> Vec<Layer> {
        (0..count)
            .map(|i| Layer::file(&format!("layer-{i}.txt"), format!("layer {i}\n")))
            .collect()
    }
}

/// An OCI image layout on disk (removed on drop) and the digests in it.
pub struct Image {
    /// The manifest's digest, `sha256:…`: what a registry answers with.
    pub digest: String,
    /// The manifest, byte for byte.
    pub manifest: Vec<u8>,
    pub config_digest: String,
    /// Layer blob digests, bottom first.
    pub layer_digests: Vec<String>,
    scratch: Scratch,
}

impl Image {
    /// Writes an image of `layers` (at least one) as an OCI image layout.
    pub fn build(layers: &[Layer]) -> Image {
        assert!(!layers.is_empty(), "an image needs a layer");
        let scratch = Scratch::new("oci");
        let blobs = scratch.join("layout/blobs/sha256/.keep");
        let blobs = blobs.parent().unwrap();
        let mut descriptors = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let (media_type, digest, size, diff_id) = write_layer(blobs, i, layer);
            descriptors.push(serde_json::json!({
                "mediaType": media_type, "digest": digest, "size": size,
            }));
            diff_ids.push(diff_id);
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": oci_arch(),
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/true"],
                "Labels": {"dev.imagegate.e2e": "true"},
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().map(|_| serde_json::json!({
                "created": "2024-01-01T00:00:00Z", "created_by": "imagegate e2e",
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        let config_digest = write_blob(blobs, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let digest = write_blob(blobs, &manifest);
        let layout = scratch.path().join("layout");
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": MANIFEST, "digest": digest, "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": LAYOUT_REF},
            }],
        });
        std::fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        Image {
            digest,
            manifest,
            config_digest,
            layer_digests: descriptors
                .iter()
                .map(|d| d["digest"].as_str().unwrap().to_owned())
                .collect(),
            scratch,
        }
    }

    /// The OCI image layout directory.
    pub fn layout(&self) -> PathBuf {
        self.scratch.path().join("layout")
    }

    /// `oci:DIR:image`, the skopeo source name of this image.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{LAYOUT_REF}", self.layout().display())
    }

    /// The file holding blob `digest` (`sha256:…`).
    pub fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.layout().join("blobs/sha256").join(hex)
    }

    /// Pushes this image to `registry` as `REPO:TAG` with skopeo (TLS
    /// verified against the registry's CA, its credentials if it has them),
    /// keeping every digest.
    pub fn push(&self, registry: &Registry, repo: &str, tag: &str) -> Run {
        require("skopeo");
        let env = Scratch::new("push");
        std::fs::write(env.join("registries.conf"), "").unwrap();
        let mut cmd = clean_command("skopeo");
        cmd.env("HOME", env.path())
            .env("TMPDIR", env.path())
            .env("XDG_RUNTIME_DIR", env.path())
            .arg(format!(
                "--registries-conf={}",
                env.path().join("registries.conf").display()
            ))
            .args(["copy", "--quiet", "--preserve-digests"]);
        match registry.ca() {
            Some(ca) => {
                std::fs::copy(ca, env.join("trust/ca.crt")).unwrap();
                cmd.arg(format!(
                    "--dest-cert-dir={}",
                    env.path().join("trust").display()
                ));
            }
            None => {
                cmd.arg("--dest-tls-verify=false");
            }
        }
        match registry.credentials() {
            Some((user, password)) => cmd.arg(format!("--dest-creds={user}:{password}")),
            None => cmd.arg("--dest-no-creds"),
        };
        cmd.arg(self.oci_ref())
            .arg(format!("docker://{}/{repo}:{tag}", registry.host_port()));
        run(cmd, None, DEFAULT_TIMEOUT).success()
    }
}

/// Builds an image of `layers`, pushes it to `registry` as `REPO:TAG` and
/// returns it; `image.digest` is the digest the registry serves.
pub fn push_image(registry: &Registry, repo: &str, tag: &str, layers: &[Layer]) -> Image {
    let image = Image::build(layers);
    image.push(registry, repo, tag);
    image
}

/// The OCI architecture of this machine, so clients pull without a platform warning.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    std::fs::write(blobs.join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// Writes layer `i`; returns (media type, blob digest, blob size, diff ID).
fn write_layer(blobs: &Path, i: usize, layer: &Layer) -> (&'static str, String, u64, String) {
    match layer {
        Layer::File { path, contents } => {
            let mut tar = Vec::new();
            tar_header(&mut tar, path, contents.len() as u64);
            tar.extend_from_slice(contents);
            tar_finish(&mut tar, contents.len() as u64);
            let diff_id = format!("sha256:{}", sha256_hex(&tar));
            let gz = gzip(&tar);
            let digest = write_blob(blobs, &gz);
            (TAR_GZIP, digest, gz.len() as u64, diff_id)
        }
        Layer::Random { path, size, seed } => {
            let tmp = blobs.join(format!("layer-{i}.partial"));
            let mut out =
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
            let mut header = Vec::new();
            tar_header(&mut header, path, *size);
            out.write_all(&header).unwrap();
            let mut rng = SplitMix64(*seed);
            let mut chunk = vec![0u8; 1 << 20];
            let mut left = *size;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                rng.fill(&mut chunk[..n]);
                out.write_all(&chunk[..n]).unwrap();
                left -= n as u64;
            }
            let mut tail = Vec::new();
            tar_finish(&mut tail, *size);
            out.write_all(&tail).unwrap();
            out.flush().unwrap();
            drop(out);
            let digest = format!("sha256:{}", sha256_file(&tmp));
            std::fs::rename(&tmp, blobs.join(&digest["sha256:".len()..])).unwrap();
            let len = std::fs::metadata(blobs.join(&digest["sha256:".len()..]))
                .unwrap()
                .len();
            (TAR, digest.clone(), len, digest)
        }
    }
}

/// The SHA-256 of a file, by `openssl dgst`: sha2 unoptimised (tests build
/// without optimisation) takes about 20 s a GiB, openssl under one.
fn sha256_file(path: &Path) -> String {
    require("openssl");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl dgst: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(hex.len(), 64, "openssl dgst printed {text:?}");
    hex
}

/// Pseudo-random bytes (SplitMix64): incompressible, reproducible from the seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A POSIX ustar header for a regular file, mode 0644, owned by root, mtime 0.
fn tar_header(out: &mut Vec<u8>, path: &str, size: u64) {
    assert!(path.len() < 100, "tar path too long: {path}");
    assert!(size < 8 << 30, "ustar sizes stop below 8 GiB");
    let mut h = [0u8; 512];
    h[..path.len()].copy_from_slice(path.as_bytes());
    let mut field = |at: usize, width: usize, value: u64| {
        let text = format!("{value:0w$o}\0", w = width - 1);
        h[at..at + width].copy_from_slice(text.as_bytes());
    };
    field(100, 8, 0o644); // mode
    field(108, 8, 0); // uid
    field(116, 8, 0); // gid
    field(124, 12, size);
    field(136, 12, 0); // mtime
    h[156] = b'0'; // regular file
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
}

/// Pads the file's data to a 512-byte block and ends the archive.
fn tar_finish(out: &mut Vec<u8>, size: u64) {
    let pad = (512 - size % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad as usize + 1024));
}

/// `gzip -n` of `bytes`.
pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    require("gzip");
    let mut child = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "gzip failed");
    out.stdout
}
