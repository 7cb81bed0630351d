//! Auto Scaling `EC2 Instance Launch/Terminate Successful/Unsuccessful` details.

use serde::Deserialize;

/// The detail of an Auto Scaling instance launch or terminate event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsgActivity {
    pub auto_scaling_group_name: String,
    #[serde(default, rename = "EC2InstanceId")]
    pub ec2_instance_id: Option<String>,
    #[serde(default)]
    pub status_code: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Why Auto Scaling did it ("... changing the desired capacity from 2 to 3").
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub activity_id: Option<String>,
    #[serde(default)]
    pub details: Option<AsgDetails>,
}

/// Placement of the instance.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct AsgDetails {
    #[serde(default, rename = "Availability Zone")]
    pub availability_zone: Option<String>,
    #[serde(default, rename = "Subnet ID")]
    pub subnet_id: Option<String>,
}

/// Launch or terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsgAction {
    Launch,
    Terminate,
}
