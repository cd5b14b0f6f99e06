//! IAM's answers: `<ActionResponse><ActionResult>...</ActionResult><ResponseMetadata>` and
//! `<ErrorResponse>`, in the 2010-05-08 namespace, written with quick-xml.

use http::Response;
use http::{HeaderValue, StatusCode, header};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use s3s::Body;

const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// A piece of an answer.
pub(super) enum Element {
    /// `<name>text</name>`
    Text(&'static str, String),
    /// `<name>children</name>`
    Node(&'static str, Vec<Element>),
    /// Children without an element of their own.
    Group(Vec<Element>),
}

impl Element {
    pub(super) fn text(name: &'static str, value: &str) -> Self {
        Element::Text(name, value.to_owned())
    }

    pub(super) fn node(name: &'static str, children: Vec<Element>) -> Self {
        Element::Node(name, children)
    }

    pub(super) fn group(children: Vec<Element>) -> Self {
        Element::Group(children)
    }

    /// Nothing: the answer of an action that returns no fields.
    pub(super) fn empty() -> Self {
        Element::Group(Vec::new())
    }

    fn write(&self, writer: &mut Writer<Vec<u8>>) {
        match self {
            Element::Text(name, value) => write_text(writer, name, value),
            Element::Node(name, children) => {
                start(writer, name, false);
                children.iter().for_each(|child| child.write(writer));
                end(writer, name);
            }
            Element::Group(children) => children.iter().for_each(|child| child.write(writer)),
        }
    }
}

/// An IAM refusal.
#[derive(Debug)]
pub(super) struct IamError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl IamError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        IamError { status, code, message: message.to_owned() }
    }

    pub(super) fn validation(message: &str) -> Self {
        IamError::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    pub(super) fn no_such_entity(message: &str) -> Self {
        IamError::new(StatusCode::NOT_FOUND, "NoSuchEntity", message)
    }

    /// `<ErrorResponse>` with the request id.
    pub(super) fn respond(&self, request_id: &str) -> Response<Body> {
        let mut writer = document();
        start(&mut writer, "ErrorResponse", true);
        start(&mut writer, "Error", false);
        let kind = if self.status.is_server_error() { "Receiver" } else { "Sender" };
        write_text(&mut writer, "Type", kind);
        write_text(&mut writer, "Code", self.code);
        write_text(&mut writer, "Message", &self.message);
        end(&mut writer, "Error");
        write_text(&mut writer, "RequestId", request_id);
        end(&mut writer, "ErrorResponse");
        finish(writer, self.status)
    }
}

/// `<{action}Response>` holding `result` and the request id.
pub(super) fn respond(action: &str, result: Element, request_id: &str) -> Response<Body> {
    let mut writer = document();
    let response = format!("{action}Response");
    let result_name = format!("{action}Result");
    start(&mut writer, &response, true);
    let has_result = !matches!(&result, Element::Group(children) if children.is_empty());
    if has_result {
        start(&mut writer, &result_name, false);
        result.write(&mut writer);
        end(&mut writer, &result_name);
    }
    start(&mut writer, "ResponseMetadata", false);
    write_text(&mut writer, "RequestId", request_id);
    end(&mut writer, "ResponseMetadata");
    end(&mut writer, &response);
    finish(writer, StatusCode::OK)
}

fn document() -> Writer<Vec<u8>> {
    let mut writer = Writer::new(Vec::new());
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).expect("writing to a Vec");
    writer
}

fn start(writer: &mut Writer<Vec<u8>>, name: &str, with_namespace: bool) {
    let mut element = BytesStart::new(name);
    if with_namespace {
        element.push_attribute(("xmlns", NAMESPACE));
    }
    writer.write_event(Event::Start(element)).expect("writing to a Vec");
}

fn end(writer: &mut Writer<Vec<u8>>, name: &str) {
    writer.write_event(Event::End(BytesEnd::new(name))).expect("writing to a Vec");
}

fn write_text(writer: &mut Writer<Vec<u8>>, name: &str, value: &str) {
    start(writer, name, false);
    writer.write_event(Event::Text(BytesText::new(value))).expect("writing to a Vec");
    end(writer, name);
}

fn finish(writer: Writer<Vec<u8>>, status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::from(writer.into_inner()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}
