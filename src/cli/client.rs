//! `pushjet-bridge client …`: the client library's calls for people and scripts. Each prints JSON
//! on standard output; errors are returned for the caller to print as one sentence.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::pushjet::{
    Api, DEFAULT_API_URL, DeviceUuid, Error as PushjetError, Importance, Link, MessageText,
    NewMessage, PublicKey, SecretKey, Service, Title,
};

/// `client` and its options.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The Pushjet API URL.
    #[arg(long = "api", global = true, env = "PUSHJET_API_URL", default_value = DEFAULT_API_URL)]
    pub api: String,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The client's calls.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Services: create, show, edit, delete.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Send a message with a service's secret key.
    Send {
        /// The service's secret key (or PUSHJET_SECRET, which keeps it out of `ps`).
        #[arg(long, env = "PUSHJET_SECRET", hide_env_values = true)]
        secret: SecretKey,
        /// The message text.
        message: String,
        /// A title.
        #[arg(long)]
        title: Option<String>,
        /// An absolute http(s) link.
        #[arg(long)]
        link: Option<String>,
        /// Importance 1 (least) to 5 (most).
        #[arg(long, value_parser = parse_importance)]
        importance: Option<Importance>,
    },
    /// Devices: subscribe, unsubscribe, list subscriptions, read messages.
    #[command(subcommand)]
    Device(DeviceCommand),
}

/// `client service …`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service; prints it with its public and secret keys.
    Create {
        /// Its name.
        name: String,
        /// An icon URL.
        #[arg(long)]
        icon: Option<String>,
    },
    /// Show a service, by secret or public key.
    Show {
        /// The secret key.
        #[arg(
            long,
            env = "PUSHJET_SECRET",
            hide_env_values = true,
            conflicts_with = "public"
        )]
        secret: Option<SecretKey>,
        /// The public key.
        #[arg(long)]
        public: Option<PublicKey>,
    },
    /// Change a service's name and/or icon (an empty icon clears it).
    Edit {
        /// The secret key.
        #[arg(long, env = "PUSHJET_SECRET", hide_env_values = true)]
        secret: SecretKey,
        /// The new name.
        #[arg(long)]
        name: Option<String>,
        /// The new icon URL.
        #[arg(long)]
        icon: Option<String>,
    },
    /// Delete a service with its subscriptions and unread messages.
    Delete {
        /// The secret key.
        #[arg(long, env = "PUSHJET_SECRET", hide_env_values = true)]
        secret: SecretKey,
    },
}

/// `client device …`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Subscribe a device to a service.
    Subscribe {
        /// The device's UUID.
        #[arg(long)]
        uuid: DeviceUuid,
        /// The service's public key.
        public_key: PublicKey,
    },
    /// Unsubscribe a device from a service.
    Unsubscribe {
        /// The device's UUID.
        #[arg(long)]
        uuid: DeviceUuid,
        /// The service's public key.
        public_key: PublicKey,
    },
    /// List a device's subscriptions.
    Subscriptions {
        /// The device's UUID.
        #[arg(long)]
        uuid: DeviceUuid,
    },
    /// Read a device's unread messages (this marks them read).
    Messages {
        /// The device's UUID.
        #[arg(long)]
        uuid: DeviceUuid,
    },
    /// Mark every message of a device read.
    MarkRead {
        /// The device's UUID.
        #[arg(long)]
        uuid: DeviceUuid,
    },
    /// Print each message of a device as one JSON line the moment it arrives (this marks them
    /// read), until Ctrl-C; polls against a server without streams.
    Listen {
        /// The device's UUID.
        #[arg(long)]
        uuid: DeviceUuid,
    },
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientCommandError {
    /// A bad argument.
    #[error("{0}")]
    Argument(String),
    /// The API answered with an error or could not be reached.
    #[error(transparent)]
    Pushjet(#[from] PushjetError),
    /// Listening failed.
    #[error(transparent)]
    Listen(#[from] super::listen::ListenError),
}

fn parse_importance(raw: &str) -> Result<Importance, String> {
    Importance::parse(raw).map_err(|error| error.to_string())
}

/// Runs one client command and returns what to print (`null`: nothing more, it printed as it went).
pub async fn run(args: ClientArgs) -> Result<Value, ClientCommandError> {
    let api =
        Api::new(&args.api).map_err(|error| ClientCommandError::Argument(error.to_string()))?;
    match args.command {
        ClientCommand::Service(command) => run_service(&api, command).await,
        ClientCommand::Send {
            secret,
            message,
            title,
            link,
            importance,
        } => {
            let argument =
                |error: crate::pushjet::FieldError| ClientCommandError::Argument(error.to_string());
            let message = NewMessage {
                message: MessageText::new(message).map_err(argument)?,
                title: Title::new(title.as_deref().unwrap_or_default()),
                link: link
                    .as_deref()
                    .map(Link::parse)
                    .transpose()
                    .map_err(argument)?,
                importance: importance.unwrap_or_default(),
            };
            api.send(&secret, &message).await?;
            Ok(json!({"status": "ok", "sent": sent_json(&message)}))
        }
        ClientCommand::Device(command) => run_device(&api, command).await,
    }
}

async fn run_service(api: &Api, command: ServiceCommand) -> Result<Value, ClientCommandError> {
    match command {
        ServiceCommand::Create { name, icon } => {
            let service = api.create_service(&name, icon.as_deref()).await?;
            Ok(service_json(&service))
        }
        ServiceCommand::Show { secret, public } => {
            let service = match (secret, public) {
                (Some(secret), _) => api.service_by_secret(secret).await?,
                (None, Some(public)) => api.service_by_public_key(&public).await?,
                (None, None) => {
                    return Err(ClientCommandError::Argument(
                        "give the service's --secret or --public key".to_owned(),
                    ));
                }
            };
            Ok(service_json(&service))
        }
        ServiceCommand::Edit { secret, name, icon } => {
            if name.is_none() && icon.is_none() {
                return Err(ClientCommandError::Argument(
                    "give --name and/or --icon to change".to_owned(),
                ));
            }
            let mut service = api.service_by_secret(secret).await?;
            service.edit(name.as_deref(), icon.as_deref()).await?;
            Ok(service_json(&service))
        }
        ServiceCommand::Delete { secret } => {
            let service = api.service_by_secret(secret).await?;
            service.delete().await?;
            Ok(json!({"status": "ok", "deleted": service.public_key()}))
        }
    }
}

async fn run_device(api: &Api, command: DeviceCommand) -> Result<Value, ClientCommandError> {
    match command {
        DeviceCommand::Subscribe { uuid, public_key } => {
            let service = api.device(uuid).subscribe(&public_key).await?;
            Ok(json!(service))
        }
        DeviceCommand::Unsubscribe { uuid, public_key } => {
            api.device(uuid).unsubscribe(&public_key).await?;
            Ok(json!({"status": "ok"}))
        }
        DeviceCommand::Subscriptions { uuid } => Ok(json!(api.device(uuid).subscriptions().await?)),
        DeviceCommand::Messages { uuid } => Ok(json!(api.device(uuid).messages().await?)),
        DeviceCommand::MarkRead { uuid } => {
            api.device(uuid).mark_read().await?;
            Ok(json!({"status": "ok"}))
        }
        DeviceCommand::Listen { uuid } => {
            super::listen::listen(api, uuid).await?;
            Ok(Value::Null)
        }
    }
}

/// A service as JSON, with its secret key when it is held: the user asked for it on their own
/// terminal.
fn service_json(service: &Service) -> Value {
    let mut value = json!(service.info());
    if let Some(secret) = service.secret_key() {
        value["secret_key"] = Value::String(secret.expose().to_owned());
    }
    value
}

/// A sent message as JSON, the way the server stores it: an empty title is no title (`null`).
fn sent_json(message: &NewMessage) -> Value {
    let mut value = json!(message);
    if message.title.is_empty() {
        value["title"] = Value::Null;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_title_is_echoed_as_none_and_a_given_one_as_itself() {
        let plain = NewMessage::text(MessageText::new("plain").unwrap());
        assert_eq!(sent_json(&plain)["title"], Value::Null);
        assert_eq!(sent_json(&plain)["message"], "plain");
        let titled = NewMessage {
            title: Title::new("Disk"),
            ..plain
        };
        assert_eq!(sent_json(&titled)["title"], "Disk");
    }
}
