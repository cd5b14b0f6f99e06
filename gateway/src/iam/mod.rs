//! The IAM query API on the S3 port, as Ceph RGW offers it: `aws iam ... --endpoint-url`
//! manages an account's users, access keys and inline user policies.
//!
//! A request is a form-encoded `POST /` signed for the service `iam`; the router hands it
//! here rather than to s3s, which verifies no `iam` signature: [`signature`] checks it.
//! Every action works inside the caller's account. Only the
//! account's root user, or a user whose policies allow the action (`iam:CreateUser` on
//! `arn:aws:iam::<account>:user/<name>`, ...), may call it. Each change is recorded by the
//! registry as an event naming the access key that signed it.

mod response;
mod signature;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt as _;
use registry::identities::NewAccessKey;
use registry::policy::{self, ConditionKeys, Grants, Policy, Principal, Request};
use registry::queries::AccessKey;
use registry::state::{ROOT_ACCOUNT, ROOT_USER};
use registry::{Caller, Registry, RequestContext};
use s3s::Body;
use s3s::auth::S3Auth as _;

use self::response::{Element, IamError, respond};
use crate::auth::access::{SecureTransport, condition_keys};
use crate::auth::keys::new_access_key;
use crate::auth::{Users, key_holder};
use crate::client_addr::ClientAddr;
use crate::request::RequestId;

/// The largest IAM request body read (a policy document is at most 10 KiB, form-encoded).
const MAX_BODY: usize = 64 * 1024;

/// The IAM API.
#[derive(Clone)]
pub struct IamApi {
    registry: Registry,
    users: Users,
    /// The root account's id.
    root_account: String,
    /// How `aws:SecureTransport` is decided.
    secure_transport: SecureTransport,
}

/// Who called, as IAM sees it.
struct IamCaller {
    account: String,
    account_id: String,
    user: String,
    /// Whether the caller is the account's root user: decided by the key that signed, never
    /// by the user's name (a configured key's user is named after its access key, which may
    /// be `root`).
    root: bool,
    policies: Vec<Policy>,
    access_key: String,
}

impl IamApi {
    /// The API over `registry`; `users` are the configured keys, `root_account` the root
    /// account's id.
    #[must_use]
    pub fn new(registry: Registry, users: Users, root_account: String, secure_transport: SecureTransport) -> Self {
        IamApi { registry, users, root_account, secure_transport }
    }

    /// Answers one IAM request, refusals included, in IAM's XML.
    pub async fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
        id: &RequestId,
        client: Option<ClientAddr>,
    ) -> http::Response<Body> {
        let (parts, body) = req.into_parts();
        let outcome = async {
            let bytes = read_body(body).await?;
            let authorization = parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(signature::Authorization::parse)
                .ok_or_else(|| {
                    IamError::new(StatusCode::FORBIDDEN, "IncompleteSignature", "The request signature is malformed.")
                })?;
            let secret = self.users.get_secret_key(authorization.access_key).await.map_err(|_| {
                IamError::new(
                    StatusCode::FORBIDDEN,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                )
            })?;
            signature::check(&parts, &authorization, &bytes, secret.expose(), std::time::SystemTime::now())?;
            let context = RequestContext {
                access_key: Some(authorization.access_key.to_owned()),
                request_id: Some(id.0.clone()),
                source_addr: client.map(|c| c.to_string()),
                user_agent: parts
                    .headers
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            };
            let params: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
            let caller = self.caller(authorization.access_key).await?;
            let keys = condition_keys(self.secure_transport, client, &parts.headers, &parts.uri);
            let call = Call { api: self, caller: &caller, context, params: &params, keys };
            let action = call.param("Action").ok_or_else(|| IamError::validation("Action is required"))?;
            call.run(&action).await.map(|element| (action, element))
        }
        .await;
        match outcome {
            Ok((action, element)) => respond(&action, element, &id.0),
            Err(err) => {
                tracing::info!(code = err.code, status = err.status.as_u16(), message = %err.message, "IAM request refused");
                err.respond(&id.0)
            }
        }
    }

    /// The caller of a request signed with `access_key`, whose signature was checked.
    async fn caller(&self, access_key: &str) -> Result<IamCaller, IamError> {
        if let Some(user) = self.users.get(access_key) {
            // The configured root key is the root account's root user. Other configured keys
            // get no IAM rights: the keys they could make would outlive their removal from
            // the configuration and escape its `bypass_governance`.
            let user_name = if user.root { ROOT_USER.to_owned() } else { access_key.to_owned() };
            let policies = Vec::new();
            return Ok(IamCaller {
                account: ROOT_ACCOUNT.to_owned(),
                account_id: self.root_account.clone(),
                user: user_name,
                root: user.root,
                policies,
                access_key: access_key.to_owned(),
            });
        }
        let Some(holder) = key_holder(&self.registry, access_key).await.map_err(IamError::from)? else {
            return Err(IamError::new(
                StatusCode::FORBIDDEN,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ));
        };
        Ok(IamCaller {
            account: holder.account.name,
            account_id: holder.account.id,
            // The registry reserves the name for each account's root user.
            root: holder.user == ROOT_USER,
            user: holder.user,
            policies: holder.policies,
            access_key: access_key.to_owned(),
        })
    }
}

/// One request being answered.
struct Call<'a> {
    api: &'a IamApi,
    caller: &'a IamCaller,
    context: RequestContext,
    params: &'a [(String, String)],
    /// The request's condition keys (time, source address, transport, user agent).
    keys: ConditionKeys,
}

impl Call<'_> {
    /// A form parameter (the last of a repeated name).
    fn param(&self, name: &str) -> Option<String> {
        self.params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    async fn run(&self, action: &str) -> Result<Element, IamError> {
        let registry = &self.api.registry;
        let account = self.caller.account.clone();
        match action {
            "CreateUser" => {
                let name = self.required("UserName")?;
                self.authorize(action, &self.user_arn(&name))?;
                registry.create_user(self.by(), &account, &name).await?;
                let user = self.read_user(&name).await?;
                Ok(Element::node("User", self.user_fields(&name, user.created_at)))
            }
            "GetUser" => {
                let name = self.user_param();
                self.authorize(action, &self.user_arn(&name))?;
                let user = self.read_user(&name).await?;
                Ok(Element::node("User", self.user_fields(&name, user.created_at)))
            }
            "ListUsers" => {
                self.authorize(action, &format!("arn:aws:iam::{}:user/", self.caller.account_id))?;
                let users = registry.read(move |reads| reads.users(&account)).await?;
                let members = users
                    .iter()
                    .filter(|user| user.name != ROOT_USER)
                    .map(|user| Element::node("member", self.user_fields(&user.name, user.created_at)))
                    .collect();
                Ok(Element::group(vec![Element::node("Users", members), Element::text("IsTruncated", "false")]))
            }
            "DeleteUser" => {
                let name = self.required("UserName")?;
                self.authorize(action, &self.user_arn(&name))?;
                registry.delete_user(self.by(), &account, &name).await?;
                Ok(Element::empty())
            }
            "CreateAccessKey" => {
                let name = self.user_param();
                self.authorize(action, &self.user_arn(&name))?;
                let key: NewAccessKey = new_access_key();
                registry.create_access_key(self.by(), &account, &name, key.clone()).await?;
                let created = self.read_key(&key.access_key).await?;
                let mut fields = self.key_fields(&created);
                fields.push(Element::text("SecretAccessKey", &key.secret));
                Ok(Element::node("AccessKey", fields))
            }
            "ListAccessKeys" => {
                let name = self.user_param();
                self.authorize(action, &self.user_arn(&name))?;
                self.read_user(&name).await?;
                let keys = registry.read(move |reads| reads.access_keys(&account, &name)).await?;
                let members = keys.iter().map(|key| Element::node("member", self.key_fields(key))).collect();
                Ok(Element::group(vec![
                    Element::node("AccessKeyMetadata", members),
                    Element::text("IsTruncated", "false"),
                ]))
            }
            "UpdateAccessKey" | "DeleteAccessKey" => {
                let id = self.required("AccessKeyId")?;
                let key = self.read_key(&id).await?;
                // The key must be the named user's (the caller's own when none is named), as on
                // AWS: a call naming one user never changes another's key.
                if key.user != self.user_param() {
                    return Err(IamError::no_such_entity(&format!("The Access Key with id {id} cannot be found.")));
                }
                self.authorize(action, &self.user_arn(&key.user))?;
                if action == "DeleteAccessKey" {
                    registry.delete_access_key(self.by(), &id).await?;
                } else {
                    let active = match self.required("Status")?.as_str() {
                        "Active" => true,
                        "Inactive" => false,
                        other => {
                            return Err(IamError::validation(&format!(
                                "Value '{other}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
                            )));
                        }
                    };
                    registry.set_access_key_status(self.by(), &id, active).await?;
                }
                Ok(Element::empty())
            }
            "PutUserPolicy" => {
                let (name, policy_name) = (self.required("UserName")?, self.required("PolicyName")?);
                let document = self.required("PolicyDocument")?;
                self.authorize(action, &self.user_arn(&name))?;
                registry.put_user_policy(self.by(), &account, &name, &policy_name, document).await?;
                Ok(Element::empty())
            }
            "GetUserPolicy" => {
                let (name, policy_name) = (self.required("UserName")?, self.required("PolicyName")?);
                self.authorize(action, &self.user_arn(&name))?;
                let document = self.read_policies(&name).await?.into_iter().find(|(n, _)| *n == policy_name);
                let Some((_, document)) = document else {
                    return Err(IamError::no_such_entity(&format!(
                        "The user policy with name {policy_name} cannot be found."
                    )));
                };
                // IAM returns the document URL-encoded.
                let encoded: String = form_urlencoded::byte_serialize(document.as_bytes()).collect();
                Ok(Element::group(vec![
                    Element::text("UserName", &name),
                    Element::text("PolicyName", &policy_name),
                    Element::text("PolicyDocument", &encoded.replace('+', "%20")),
                ]))
            }
            "ListUserPolicies" => {
                let name = self.required("UserName")?;
                self.authorize(action, &self.user_arn(&name))?;
                let names =
                    self.read_policies(&name).await?.into_iter().map(|(n, _)| Element::text("member", &n)).collect();
                Ok(Element::group(vec![Element::node("PolicyNames", names), Element::text("IsTruncated", "false")]))
            }
            "DeleteUserPolicy" => {
                let (name, policy_name) = (self.required("UserName")?, self.required("PolicyName")?);
                self.authorize(action, &self.user_arn(&name))?;
                registry.delete_user_policy(self.by(), &account, &name, &policy_name).await?;
                Ok(Element::empty())
            }
            other => Err(IamError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                &format!("Could not find operation {other} for version 2010-05-08"),
            )),
        }
    }

    /// The event's caller: the access key that signed the request.
    fn by(&self) -> Caller {
        Caller { actor: self.caller.access_key.clone(), context: self.context.clone() }
    }

    fn required(&self, name: &str) -> Result<String, IamError> {
        self.param(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            IamError::validation(&format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            ))
        })
    }

    /// `UserName`, or the caller itself when it is absent (as IAM does).
    fn user_param(&self) -> String {
        self.param("UserName").filter(|v| !v.is_empty()).unwrap_or_else(|| self.caller.user.clone())
    }

    fn user_arn(&self, name: &str) -> String {
        policy::User::named(&self.caller.account_id, name).arn().to_owned()
    }

    /// The account's root user may do anything here; another user what its policies allow.
    fn authorize(&self, action: &str, resource: &str) -> Result<(), IamError> {
        if self.caller.root {
            return Ok(());
        }
        // The root user is beyond every IAM policy, as on AWS: no user, whatever it is
        // allowed, reads or changes the root user's keys or policies.
        if resource == self.user_arn(ROOT_USER) {
            return Err(IamError::no_such_entity("The user with name root cannot be found."));
        }
        let principal = Principal::User(policy::User::new(&self.caller.account_id, &self.caller.user));
        let action = format!("iam:{action}");
        let request = Request { principal: &principal, action: &action, resource, keys: &self.keys };
        let grants = Grants {
            identity: &self.caller.policies,
            resource_owner: Some(&self.caller.account_id),
            ..Grants::default()
        };
        if policy::decide(&request, &grants).allowed() {
            return Ok(());
        }
        Err(IamError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!(
                "User: arn:aws:iam::{}:user/{} is not authorized to perform: {action} on resource: {resource}",
                self.caller.account_id, self.caller.user
            ),
        ))
    }

    fn user_fields(&self, name: &str, created_at: i64) -> Vec<Element> {
        let user = policy::User::named(&self.caller.account_id, name);
        vec![
            Element::text("Path", "/"),
            Element::text("UserName", name),
            Element::text("UserId", user.id()),
            Element::text("Arn", user.arn()),
            Element::text("CreateDate", &crate::clock::rfc3339(created_at)),
        ]
    }

    fn key_fields(&self, key: &AccessKey) -> Vec<Element> {
        vec![
            Element::text("UserName", &key.user),
            Element::text("AccessKeyId", &key.access_key),
            Element::text("Status", if key.active { "Active" } else { "Inactive" }),
            Element::text("CreateDate", &crate::clock::rfc3339(key.created_at)),
        ]
    }

    async fn read_user(&self, name: &str) -> Result<registry::queries::AccountUser, IamError> {
        let (account, user) = (self.caller.account.clone(), name.to_owned());
        self.api
            .registry
            .read(move |reads| reads.user(&account, &user))
            .await?
            .ok_or_else(|| IamError::no_such_entity(&format!("The user with name {name} cannot be found.")))
    }

    /// A key of the caller's account, or `NoSuchEntity` (another account's keys are not
    /// this caller's to see).
    async fn read_key(&self, id: &str) -> Result<AccessKey, IamError> {
        let wanted = id.to_owned();
        let key = self.api.registry.read(move |reads| reads.access_key(&wanted)).await?;
        key.filter(|key| !key.deleted && key.account == self.caller.account)
            .ok_or_else(|| IamError::no_such_entity(&format!("The Access Key with id {id} cannot be found.")))
    }

    async fn read_policies(&self, name: &str) -> Result<Vec<(String, String)>, IamError> {
        self.read_user(name).await?;
        let (account, user) = (self.caller.account.clone(), name.to_owned());
        Ok(self.api.registry.read(move |reads| reads.user_policies(&account, &user)).await?)
    }
}

/// Reads the form body, refusing one larger than [`MAX_BODY`].
async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, IamError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(IamError::validation("The request body is too large or could not be read.")),
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

impl From<registry::Error> for IamError {
    fn from(err: registry::Error) -> Self {
        use registry::Error as R;
        match err {
            R::NoSuchEntity(message) => IamError::no_such_entity(&message),
            R::EntityAlreadyExists(message) => IamError::new(StatusCode::CONFLICT, "EntityAlreadyExists", &message),
            R::DeleteConflict(message) => IamError::new(StatusCode::CONFLICT, "DeleteConflict", &message),
            R::InvalidIdentityName(message) => IamError::validation(&message),
            R::MalformedPolicy(message) => IamError::new(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", &message),
            other => {
                tracing::error!(error = %other, "IAM request failed in the registry");
                IamError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailure", "The request processing has failed.")
            }
        }
    }
}
