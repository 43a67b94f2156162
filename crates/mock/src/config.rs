//! Instance data served by the mock, read from a TOML file (`--config FILE`); every key is
//! optional and defaults to a plausible, obviously fake instance. Credentials are never
//! configured: they are generated per run (see [`crate::secrets`]).

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    pub aws: AwsConfig,
    pub ecs: EcsConfig,
    pub gcp: GcpConfig,
    pub azure: AzureConfig,
}

/// `[aws]`: the EC2 instance.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    pub instance_id: String,
    pub ami_id: String,
    pub instance_type: String,
    pub region: String,
    pub availability_zone: String,
    pub availability_zone_id: String,
    pub account_id: String,
    pub hostname: String,
    pub local_ipv4: String,
    /// Empty: the instance has no public address (the `public-*` keys are absent, as on EC2).
    pub public_ipv4: String,
    pub public_hostname: String,
    pub mac: String,
    pub interface_id: String,
    pub vpc_id: String,
    pub vpc_cidr: String,
    pub subnet_id: String,
    pub subnet_cidr: String,
    pub security_group: String,
    pub security_group_id: String,
    pub reservation_id: String,
    /// The instance profile's role; empty: no role attached (`iam/` is then absent, as on EC2).
    pub role_name: String,
    pub instance_profile_id: String,
    /// User data; empty: none (`latest/user-data` answers 404, as on EC2).
    pub user_data: String,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            instance_id: "i-0a1b2c3d4e5f6a7b8".into(),
            ami_id: "ami-0abcdef1234567890".into(),
            instance_type: "t3.micro".into(),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            availability_zone_id: "use1-az1".into(),
            account_id: "123456789012".into(),
            hostname: "ip-10-0-1-23.ec2.internal".into(),
            local_ipv4: "10.0.1.23".into(),
            public_ipv4: "203.0.113.25".into(),
            public_hostname: "ec2-203-0-113-25.compute-1.amazonaws.com".into(),
            mac: "0e:1a:2b:3c:4d:5e".into(),
            interface_id: "eni-0a1b2c3d4e5f6a7b8".into(),
            vpc_id: "vpc-0a1b2c3d4e5f6a7b8".into(),
            vpc_cidr: "10.0.0.0/16".into(),
            subnet_id: "subnet-0a1b2c3d4e5f6a7b8".into(),
            subnet_cidr: "10.0.1.0/24".into(),
            security_group: "default".into(),
            security_group_id: "sg-0a1b2c3d4e5f6a7b8".into(),
            reservation_id: "r-0a1b2c3d4e5f6a7b8".into(),
            role_name: "imdsguard-demo-role".into(),
            instance_profile_id: "AIPAEXAMPLEPROFILE01".into(),
            user_data: "#!/bin/bash\necho 'hello from the imdsguard metadata mock'\n".into(),
        }
    }
}

/// `[ecs]`: the ECS task credentials endpoint (`/v2/credentials/<id>`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EcsConfig {
    /// The id in `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/<id>`.
    pub credentials_id: String,
    pub task_role_arn: String,
}

impl Default for EcsConfig {
    fn default() -> Self {
        EcsConfig {
            credentials_id: "5e1c8d0a-7b3f-4c2e-9a61-0123456789ab".into(),
            task_role_arn: "arn:aws:iam::123456789012:role/imdsguard-demo-task-role".into(),
        }
    }
}

/// `[gcp]`: the Compute Engine VM.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GcpConfig {
    pub project_id: String,
    pub numeric_project_id: u64,
    pub instance_id: u64,
    pub instance_name: String,
    pub zone: String,
    pub machine_type: String,
    pub hostname: String,
    pub internal_ip: String,
    /// Empty: the default compute service account `<numeric_project_id>-compute@developer.gserviceaccount.com`.
    pub service_account_email: String,
    pub scopes: Vec<String>,
    /// Custom instance metadata (`instance/attributes/`).
    pub instance_attributes: BTreeMap<String, String>,
    /// Custom project metadata (`project/attributes/`).
    pub project_attributes: BTreeMap<String, String>,
}

impl Default for GcpConfig {
    fn default() -> Self {
        GcpConfig {
            project_id: "imdsguard-demo".into(),
            numeric_project_id: 123456789012,
            instance_id: 4520031799277581759,
            instance_name: "demo-vm".into(),
            zone: "us-central1-a".into(),
            machine_type: "e2-medium".into(),
            hostname: "demo-vm.us-central1-a.c.imdsguard-demo.internal".into(),
            internal_ip: "10.128.0.2".into(),
            service_account_email: String::new(),
            scopes: vec![
                "https://www.googleapis.com/auth/devstorage.read_only".into(),
                "https://www.googleapis.com/auth/logging.write".into(),
                "https://www.googleapis.com/auth/monitoring.write".into(),
            ],
            instance_attributes: BTreeMap::from([("enable-oslogin".to_string(), "TRUE".to_string())]),
            project_attributes: BTreeMap::from([("env".to_string(), "demo".to_string())]),
        }
    }
}

impl GcpConfig {
    /// The service account's email.
    pub fn email(&self) -> String {
        if self.service_account_email.is_empty() {
            format!("{}-compute@developer.gserviceaccount.com", self.numeric_project_id)
        } else {
            self.service_account_email.clone()
        }
    }
}

/// `[azure]`: the Azure VM.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AzureConfig {
    pub subscription_id: String,
    pub resource_group: String,
    pub vm_id: String,
    pub vm_name: String,
    pub location: String,
    pub vm_size: String,
    pub private_ip: String,
    pub mac: String,
    pub tenant_id: String,
    /// The system-assigned managed identity's client id.
    pub client_id: String,
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            subscription_id: "00000000-1111-2222-3333-444444444444".into(),
            resource_group: "imdsguard-demo-rg".into(),
            vm_id: "02aab8a4-74ef-476e-8182-f6d2ba4166a6".into(),
            vm_name: "demo-vm".into(),
            location: "westeurope".into(),
            vm_size: "Standard_B2s".into(),
            private_ip: "10.1.0.4".into(),
            mac: "000D3A123456".into(),
            tenant_id: "72f988bf-0000-0000-0000-000000000000".into(),
            client_id: "9a1b2c3d-0000-4000-8000-00000000c11d".into(),
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl MockConfig {
    /// Parses a TOML configuration; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<MockConfig, ConfigError> {
        let cfg: MockConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid { path: origin.to_string(), message: e.to_string() })?;
        cfg.validate().map_err(|message| ConfigError::Invalid { path: origin.to_string(), message })?;
        Ok(cfg)
    }

    /// Values that would make paths or listings ambiguous are refused.
    pub fn validate(&self) -> Result<(), String> {
        let path_like = [
            ("aws.role_name", &self.aws.role_name),
            ("aws.mac", &self.aws.mac),
            ("ecs.credentials_id", &self.ecs.credentials_id),
        ];
        for (name, v) in path_like {
            if v.contains('/') || v.contains('?') || v.chars().any(|c| c.is_control() || c == ' ') {
                return Err(format!("{name} = {v:?} must not contain '/', '?', spaces or control characters"));
            }
        }
        if self.ecs.credentials_id.is_empty() {
            return Err("ecs.credentials_id must not be empty".into());
        }
        for k in self.gcp.instance_attributes.keys().chain(self.gcp.project_attributes.keys()) {
            if k.is_empty() || k.contains('/') || k.contains('?') {
                return Err(format!("gcp attribute key {k:?} must be non-empty without '/' or '?'"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let cfg = MockConfig::from_toml("", "x.toml").expect("empty config");
        assert_eq!(cfg, MockConfig::default());
        let cfg = MockConfig::from_toml(
            "[aws]\nrole_name = \"web\"\nregion = \"eu-west-1\"\n[gcp]\nproject_id = \"p\"\n[gcp.instance_attributes]\nfoo = \"bar\"\n",
            "x.toml",
        )
        .expect("config");
        assert_eq!(cfg.aws.role_name, "web");
        assert_eq!(cfg.aws.region, "eu-west-1");
        assert_eq!(cfg.aws.instance_type, "t3.micro");
        assert_eq!(cfg.gcp.instance_attributes.get("foo").map(String::as_str), Some("bar"));
    }

    #[test]
    fn bad_configs_name_the_file_and_reason() {
        let cases = [
            ("[aws]\nrole_nam = \"x\"\n", "unknown field `role_nam`"),
            ("[aws]\nrole_name = \"a/b\"\n", "aws.role_name"),
            ("[ecs]\ncredentials_id = \"\"\n", "ecs.credentials_id must not be empty"),
            ("[aws\n", "x.toml"),
        ];
        for (text, want) in cases {
            let err = MockConfig::from_toml(text, "x.toml").expect_err(text).to_string();
            assert!(err.starts_with("x.toml: "), "{err}");
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }
}
