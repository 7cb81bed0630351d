//! `make preflight` (tools/preflight.py) against the emulator: a new account whose Lambda
//! concurrency limit is 50, a placeholder email and an image that was never pushed get one FIX
//! line each, naming what to do; once they are right, every check passes.

use std::process::{Command, Output};

use test_support::moto::Moto;

const IMAGE_REPO: &str = "visits-api";

fn preflight(moto: &Moto, args: &[&str]) -> (bool, String) {
    let root = test_support::paths::repo_root();
    let python = test_support::paths::venv_bin().unwrap().join("python");
    let out: Output = Command::new(python)
        .arg("tools/preflight.py")
        .args(args)
        .current_dir(&root)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run tools/preflight.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Emulator setup through boto3 (the Rust workspace has no ECR or Lambda client): a concurrency
/// limit, and optionally the repository with one pushed tag.
fn account(moto: &Moto, limit: u32, pushed_tag: Option<&str>) {
    moto.reset().unwrap();
    test_support::http::json(
        "POST",
        &format!("{}/moto-ext/lambda-concurrency-limit", moto.endpoint()),
        Some(&format!("{{\"limit\": {limit}}}")),
    )
    .unwrap();
    if let Some(tag) = pushed_tag {
        let python = test_support::paths::venv_bin().unwrap().join("python");
        let script = format!(
            "import boto3, json\n\
             ecr = boto3.client('ecr', endpoint_url='{}', region_name='us-east-1',\n\
               aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             ecr.create_repository(repositoryName='{IMAGE_REPO}')\n\
             m = {{'schemaVersion': 2, 'mediaType': 'application/vnd.docker.distribution.manifest.v2+json',\n\
               'config': {{'mediaType': 'application/vnd.docker.container.image.v1+json', 'size': 1,\n\
               'digest': 'sha256:' + '1' * 64}}, 'layers': []}}\n\
             ecr.put_image(repositoryName='{IMAGE_REPO}', imageManifest=json.dumps(m), imageTag='{tag}')\n",
            moto.endpoint()
        );
        let out = Command::new(python).arg("-c").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn image(tag: &str) -> String {
    format!("ImageUri=123456789012.dkr.ecr.us-east-1.amazonaws.com/{IMAGE_REPO}:{tag}")
}

#[test]
fn preflight_names_each_thing_to_fix_then_passes() {
    let moto = Moto::start().expect("moto");

    // A new account: limit 50, nothing pushed, samconfig's placeholders.
    account(&moto, 50, None);
    let (ok, out) = preflight(&moto, &["default"]);
    assert!(!ok, "preflight passed a new account:\n{out}");
    for want in [
        "ok   region       us-east-1",
        "ok   credentials  account 123456789012",
        "FIX  concurrency  limit 50, unreserved 50",
        "L-B99A9384",
        "at least 104",
        "FIX  email        OperatorEmail 'SET-ME'",
        "FIX  image        ImageUri 'SET-ME'",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    // Right values, but the tag was never pushed, and another region's image.
    account(&moto, 1000, Some("1.0.0"));
    let email = "OperatorEmail=ops@visits.test";
    let (ok, out) = preflight(&moto, &["prod", email, &image("2.0.0")]);
    assert!(
        !ok && out.contains("FIX  image") && out.contains("is not in ECR"),
        "{out}"
    );
    let elsewhere = "ImageUri=123456789012.dkr.ecr.eu-west-1.amazonaws.com/visits-api:1.0.0";
    let (ok, out) = preflight(&moto, &["prod", email, elsewhere]);
    assert!(
        !ok && out.contains("is in eu-west-1, the stack deploys to us-east-1"),
        "{out}"
    );

    // Everything in place.
    let (ok, out) = preflight(&moto, &["prod", email, &image("1.0.0")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok   concurrency  limit 1000, unreserved 1000"),
        "{out}"
    );
    assert!(out.contains("preflight: ready"), "{out}");
}
