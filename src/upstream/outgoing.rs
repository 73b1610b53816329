//! One try's request as the connection pool gets it. A request that may be retried keeps
//! its head in the stack for the next try: rampart's own HTTP/1.1 client writes the head
//! straight from there, and only hyper's clients, which take the request by value, get a
//! copy. Copying and then dropping a head cost about 1,800 instructions per request, over
//! 5 % of a proxied one (docs/performance.md).

use http::request::Parts;
use http::{HeaderMap, Method, Request, Uri};

use crate::proxy::body::RequestBody;
use crate::proxy::headers::Forwarding;

/// A request for one try.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Method, target, the app's prepared headers and the body.
    pub message: Message<'a>,
    /// The lines rampart adds after the app's headers (none for a health probe).
    pub forwarding: Option<&'a Forwarding>,
}

/// The request proper: owned, or the stack's kept head with this try's body.
#[derive(Debug)]
pub enum Message<'a> {
    /// The whole request: the last possible try, a health probe, a request hyper gave back.
    Owned(Request<RequestBody>),
    /// The head the stack keeps for a later try, and this try's body.
    Borrowed {
        /// Method, target and prepared headers; its extensions are not sent.
        head: &'a Parts,
        /// This try's target when it differs from `head.uri` (a stripped prefix).
        target: Option<Uri>,
        /// This try's body.
        body: RequestBody,
    },
}

impl<'a> Outgoing<'a> {
    /// A try that takes the whole request.
    pub fn owned(req: Request<RequestBody>, forwarding: Option<&'a Forwarding>) -> Self {
        Self {
            message: Message::Owned(req),
            forwarding,
        }
    }

    /// A try that borrows the stack's kept head.
    pub fn borrowed(
        head: &'a Parts,
        body: RequestBody,
        forwarding: Option<&'a Forwarding>,
    ) -> Self {
        Self {
            message: Message::Borrowed {
                head,
                target: None,
                body,
            },
            forwarding,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        match &self.message {
            Message::Owned(req) => req.method(),
            Message::Borrowed { head, .. } => &head.method,
        }
    }

    /// The target this try sends.
    pub fn uri(&self) -> &Uri {
        match &self.message {
            Message::Owned(req) => req.uri(),
            Message::Borrowed { head, target, .. } => target.as_ref().unwrap_or(&head.uri),
        }
    }

    /// The app's prepared headers, without [`Outgoing::forwarding`]'s lines.
    pub fn headers(&self) -> &HeaderMap {
        match &self.message {
            Message::Owned(req) => req.headers(),
            Message::Borrowed { head, .. } => &head.headers,
        }
    }

    /// This try's body.
    pub fn body(&self) -> &RequestBody {
        match &self.message {
            Message::Owned(req) => req.body(),
            Message::Borrowed { body, .. } => body,
        }
    }

    /// Sends this try to `uri` instead.
    pub fn set_target(&mut self, uri: Uri) {
        match &mut self.message {
            Message::Owned(req) => *req.uri_mut() = uri,
            Message::Borrowed { target, .. } => *target = Some(uri),
        }
    }

    /// Done with: an owned request's header map becomes this thread's spare
    /// ([`spare_header_map`](crate::spare_header_map)); a borrowed head is the stack's.
    pub fn recycle(self) {
        if let Message::Owned(req) = self.message {
            crate::spare_header_map::keep(req.into_parts().0.headers);
        }
    }

    /// The request by value, for hyper's clients: a borrowed head is copied (method, target
    /// and headers; the stack's extensions stay behind), and the forwarding lines are added
    /// to the headers.
    pub fn into_request(self) -> Request<RequestBody> {
        let mut req = match self.message {
            Message::Owned(req) => req,
            Message::Borrowed { head, target, body } => {
                let mut req = Request::new(body);
                *req.method_mut() = head.method.clone();
                *req.uri_mut() = target.unwrap_or_else(|| head.uri.clone());
                *req.headers_mut() = head.headers.clone();
                req
            }
        };
        if let Some(forwarding) = self.forwarding {
            forwarding.add_to(req.headers_mut());
        }
        req
    }
}

impl From<Request<RequestBody>> for Outgoing<'_> {
    /// A request sent as it is, with no forwarding lines (a health probe, a request hyper
    /// gave back, whose lines were added when it was taken apart).
    fn from(req: Request<RequestBody>) -> Self {
        Outgoing::owned(req, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderValue;

    fn head() -> Parts {
        let mut req = Request::new(());
        *req.method_mut() = Method::PUT;
        *req.uri_mut() = "/api/items?id=1".parse().unwrap();
        req.headers_mut()
            .insert("x-one", HeaderValue::from_static("1"));
        req.extensions_mut().insert(7u8);
        req.into_parts().0
    }

    /// A borrowed head reads and converts as the request it stands for; the target override
    /// wins over the head's; the stack's extensions never travel; the forwarding lines are
    /// added once, when the request is taken by value.
    #[test]
    fn a_borrowed_head_is_the_same_request_as_an_owned_copy() {
        let parts = head();
        let forwarding = Forwarding {
            forwarded_for: Some(HeaderValue::from_static("10.0.0.7")),
            request_id: None,
            via: Some(http::Version::HTTP_11),
        };
        let body = || RequestBody::Buffered(Some(Bytes::from_static(b"hi")));
        let mut borrowed = Outgoing::borrowed(&parts, body(), Some(&forwarding));
        assert_eq!(borrowed.method(), Method::PUT);
        assert_eq!(borrowed.uri(), "/api/items?id=1");
        assert_eq!(borrowed.headers()["x-one"], "1");
        assert!(!borrowed.headers().contains_key("via"), "lines stay beside");
        assert!(matches!(borrowed.body(), RequestBody::Buffered(Some(b)) if b == "hi"));
        borrowed.set_target("/items?id=1".parse().unwrap());
        assert_eq!(borrowed.uri(), "/items?id=1");
        assert_eq!(parts.uri, "/api/items?id=1", "the kept head is untouched");

        let req = borrowed.into_request();
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri(), "/items?id=1");
        let names: Vec<_> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("x-one", "1"),
                ("x-forwarded-for", "10.0.0.7"),
                ("x-forwarded-proto", "http"),
                ("via", "1.1 rampart"),
            ]
        );
        assert!(req.extensions().get::<u8>().is_none());
        assert_eq!(parts.headers.len(), 1);

        let mut owned = Outgoing::from(Request::new(body()));
        owned.set_target("/x".parse().unwrap());
        let req = owned.into_request();
        assert_eq!(req.uri(), "/x");
        assert!(req.headers().is_empty(), "no lines without forwarding");
    }
}
