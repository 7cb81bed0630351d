//! The SNS adapter: publish an email, and read/write the topic tags that hold the
//! replay ring. (Moves to `scaling::aws::sns` once the library's `aws` module lands.)

use crate::render::Message;
use aws_sdk_sns::types::{MessageAttributeValue, Tag};
use std::collections::BTreeMap;

/// Publishes one email; returns SNS's message id.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    msg: &Message,
) -> Result<String, SnsError> {
    let mut req = sns
        .publish()
        .topic_arn(topic_arn)
        .subject(&msg.subject)
        .message(&msg.body);
    for (name, value) in &msg.attributes {
        req = req.message_attributes(
            *name,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()?,
        );
    }
    let out = req.send().await.map_err(aws_sdk_sns::Error::from)?;
    Ok(out.message_id().unwrap_or_default().to_string())
}

/// Every tag of the topic.
pub async fn topic_tags(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
) -> Result<BTreeMap<String, String>, SnsError> {
    let out = sns
        .list_tags_for_resource()
        .resource_arn(topic_arn)
        .send()
        .await
        .map_err(aws_sdk_sns::Error::from)?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

/// Sets (adds or overwrites) tags on the topic.
pub async fn set_topic_tags(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    tags: &[(String, String)],
) -> Result<(), SnsError> {
    let mut req = sns.tag_resource().resource_arn(topic_arn);
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(k).value(v).build()?);
    }
    req.send().await.map_err(aws_sdk_sns::Error::from)?;
    Ok(())
}

/// An SNS call that failed, or a request that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    #[error("building the SNS request: {0}")]
    Build(#[from] aws_smithy_types::error::operation::BuildError),
    #[error(transparent)]
    Aws(#[from] aws_sdk_sns::Error),
}
