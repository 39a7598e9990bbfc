//! The shared AWS files (`~/.aws/credentials`, `~/.aws/config`), for what the environment
//! does not set: the same precedence as the AWS CLI and SDKs, environment first.

use std::path::PathBuf;

use crate::error::{bail, Context as _, Result};
use ini::Ini;
use object_store::aws::AmazonS3ConfigKey;

/// Settings of the active profile (`AWS_PROFILE`, else `default`) that the environment
/// leaves unset. Missing files give nothing; a named profile found in neither file is an
/// error, so a typo in `AWS_PROFILE` does not fall back to other credentials.
pub fn missing_from_env() -> Result<Vec<(AmazonS3ConfigKey, String)>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let named = env("AWS_PROFILE");
    let profile = named.clone().unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from).unwrap_or_default();
    let credentials = read(
        env("AWS_SHARED_CREDENTIALS_FILE")
            .map_or_else(|| home.join(".aws/credentials"), PathBuf::from),
    )?;
    let config =
        read(env("AWS_CONFIG_FILE").map_or_else(|| home.join(".aws/config"), PathBuf::from))?;
    let config_section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    let from_credentials = credentials
        .as_ref()
        .and_then(|i| i.section(Some(profile.as_str())));
    let from_config = config
        .as_ref()
        .and_then(|i| i.section(Some(config_section.as_str())));
    if named.is_some() && from_credentials.is_none() && from_config.is_none() {
        bail!(
            "AWS_PROFILE={profile}: no such profile in the shared AWS credentials or config file"
        );
    }
    let get = |key: &str| {
        from_credentials
            .and_then(|s| s.get(key))
            .or_else(|| from_config.and_then(|s| s.get(key)))
            .map(str::to_string)
    };
    let mut out = Vec::new();
    let mut add = |key: &str, value: Option<String>| -> Result<()> {
        if let Some(value) = value {
            out.push((key.parse::<AmazonS3ConfigKey>()?, value));
        }
        Ok(())
    };
    if env("AWS_ACCESS_KEY_ID").is_none() {
        add("aws_access_key_id", get("aws_access_key_id"))?;
        add("aws_secret_access_key", get("aws_secret_access_key"))?;
        add("aws_session_token", get("aws_session_token"))?;
    }
    if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
        add("aws_region", get("region"))?;
    }
    if env("AWS_ENDPOINT_URL").is_none() && env("AWS_ENDPOINT").is_none() {
        add("aws_endpoint", get("endpoint_url"))?;
    }
    Ok(out)
}

fn read(path: PathBuf) -> Result<Option<Ini>> {
    if !path.is_file() {
        return Ok(None);
    }
    Ini::load_from_file(&path)
        .map(Some)
        .with_context(|| format!("reading the AWS file {}", path.display()))
}
