// A real oidc-provider (panva, OpenID certified) for authplug's tests, on free loopback ports.
//
// Started by tests/servers/oidc_provider.py as `node server.mjs` (cwd: this folder, after
// `npm ci --prefix tests/servers/oidc`). Protocol:
//
//   stdin, first line   one JSON object, the configuration (below)
//   stdout, one line    {"issuer": ..., "api": ..., "resource": ..., "test": ...} once both
//                       servers answer; nothing else is ever written to stdout
//   stderr              oidc-provider's notices and warnings, and start-up errors
//   stdin closed        exit (so a test run that dies takes this process with it); SIGTERM,
//                       SIGINT and SIGHUP exit too
//
// Configuration (all keys optional except api_client):
//
//   clients           oidc-provider client metadata objects, passed as they are
//                     (client_id, client_secret, token_endpoint_auth_method, grant_types, jwks, ...)
//   api_client        {"client_id", "client_secret"}: the protected resource's own credentials for
//                     the introspection endpoint; registered here as a client with no grants
//   features          merged over the features below, one level deep (features.dPoP = {...})
//   ttl               merged over the ttl below (numbers of seconds: JSON holds no functions)
//   provider          any other top-level Provider configuration, merged last (clientAuthMethods,
//                     enabledJWA, jwks, scopes, routes, clockTolerance, ...)
//   api_scope         the scopes the API resource server knows (default "api:read api:write")
//   resource_servers  {"<resource indicator>": {scope, audience, accessTokenTTL, accessTokenFormat}}
//                     more resource servers for getResourceServerInfo
//   dpop              {"require_nonce": true}: oidc-provider's DPoP (on by default in v9) asks
//                     token requests for a nonce (a fresh nonceSecret each start). The API
//                     below verifies DPoP proofs itself (RFC 9449 §4.3, §7) with jose.
//   default_resource  null (default): a token request without `resource` gets an opaque token
//                     with no audience; "api": such requests get a token for the API resource;
//                     any other string: that resource indicator
//   password_grant    {"username", "password"}: a test-only resource owner password grant
//                     (oidc-provider 9 has none), registered with registerGrantType for
//                     clients that list "password" in grant_types. It makes a Grant for the
//                     account and answers an opaque access token and a refresh token
//                     (scope offline_access), so that oidc-provider's own refresh_token grant
//                     (rotation with provider.rotateRefreshToken, reuse detection: a consumed
//                     refresh token used again revokes its grant) is what the tests exercise.
//   token_exchange    {"jwks": {"keys": [...]}, "issuer": "..."} (both optional; {} turns it on):
//                     RFC 8693 token exchange, registered with registerGrantType as
//                     urn:ietf:params:oauth:grant-type:token-exchange for clients that list it in
//                     grant_types. See "Token exchange and JWT bearer" below.
//   jwt_bearer        {"jwks": {"keys": [...]}, "issuer": "...", "subject": "..." | [...]}:
//                     the RFC 7523 §2.1 JWT bearer grant
//                     (urn:ietf:params:oauth:grant-type:jwt-bearer), registered likewise.
//                     jwks is required; issuer and subject are optional (absent: any).
//   refresh_delay_ms  hold each refresh_token answer this long after oidc-provider has rotated
//                     (a client can then leave while its refresh is in flight)
//   logins            {"accounts": {"<username>": "<password>"}}: people log in, on
//                     oidc-provider's own pages (features.devInteractions: its login form and its
//                     consent form, each with a "[ Cancel ]" link that ends the request with
//                     access_denied) and through the device flow (features.deviceFlow: its
//                     user-code page at /device). devInteractions' login form takes any name and
//                     never reads the password: the harness checks both against these accounts
//                     before oidc-provider sees the form (see checkInteraction below). PKCE (S256, the
//                     only method oidc-provider 9 has) is required of every client here.
//                     Refresh tokens for a person: oidc-provider issues one when the grant holds
//                     offline_access (issueRefreshToken) and the client may use refresh_token.
//                     As OpenID Connect Core §11 says, it keeps offline_access in an
//                     authorization request only when the request says prompt=consent (or
//                     prompt=login consent): without it, offline_access is silently dropped
//                     (lib/actions/authorization/scopes.js) and no refresh token comes. Left so
//                     on purpose: a client must send prompt=consent with offline_access.
//                     A native client is asked for consent every time (native_client_prompt).
//                     A native client's loopback redirect_uri (http://127.0.0.1/...) matches on
//                     any port (Client#redirectUriAllowed strips loopback ports, RFC 8252 §7.3).
//
// GET {test}/stats counts, since the last reset: token answers as "grant_type:outcome" (ok or
// the error code), grant_revocations ('grant.revoked' events: reuse detection revoking a token
// family, or a revocation), the API's answers as "api:STATUS", and a person's answers on the
// interaction pages (logins): "login:ok" and "login:refused" (the login form, checked by the
// harness), "consent:ok" (the consent form sent), "interaction:aborted" (the "[ Cancel ]" link
// followed). The device pages are not counted: the device grant's answers tell their outcome.
// GET {test}/holding answers
// {"holding": N}: the refresh answers held back right now (a client may leave once its refresh
// is surely in flight).
//
// Resource indicators (RFC 8707). oidc-provider 9 keeps features.resourceIndicators *enabled* by
// default. For client_credentials (lib/actions/grants/client_credentials.js and
// lib/shared/check_resource.js) it calls defaultResource(ctx, client) when the request has no
// `resource`; the stock defaultResource returns undefined, so the token is then bound to no
// resource server: an opaque ClientCredentials token, no `aud`, TTL ttl.ClientCredentials, and
// introspectable (only JWT-format tokens are refused at introspection, and those exist only
// when a resource server says accessTokenFormat "jwt"). Any requested scope that is not one of
// the provider's own `scopes` (openid, offline_access) is then silently dropped. That is the
// default set-up here: a client that sends no `resource` gets an introspectable opaque token.
// When a request names a resource, getResourceServerInfo below must know it (the stock one
// throws invalid_target for everything): the API's own indicator (printed as "resource") maps
// to an *opaque* token whose aud is that indicator and whose scope is filtered to api_scope;
// anything else in resource_servers maps as given; the rest is invalid_target. Only one
// resource per client_credentials request is allowed (oidc-provider's rule).
// useGrantedResource matters only for code/refresh/device exchanges: left at its default (false).
//
// Token exchange and JWT bearer (both through provider.registerGrantType, as the password grant).
// oidc-provider authenticates the client first (any of its methods: client_secret_basic/post,
// private_key_jwt, ...) and checks that the client lists the grant type.
// - Token exchange (RFC 8693 §2.1): subject_token and subject_token_type are required;
//   actor_token needs actor_token_type. A token of type ...:access_token is checked BY
//   INTROSPECTION at this provider's own introspection endpoint (as the API client): unknown,
//   expired and revoked tokens are inactive and refused with invalid_grant. A token of type
//   ...:jwt (or ...:id_token) is verified with jose against token_exchange.jwks (signature, exp
//   and sub required, iss = token_exchange.issuer when given). Other types: invalid_request.
//   The target is resource, else audience (an indicator, or a resource server's `audience`),
//   else default_resource; one target at most (invalid_target otherwise, and for an unknown one).
//   The answer is an oidc-provider AccessToken (its format is the resource server's: opaque for
//   the API) bound to that resource server (aud), for sub = the subject's sub (its client_id when
//   it has none), with `act` {"sub": actor} (nested when the actor token had its own act) as an
//   extra claim that introspection shows, scope = the requested scope (else the subject's)
//   filtered to the resource server's, expires_in = min(the AccessToken TTL, the subject's
//   remaining life), issued_token_type ...:access_token (or ...:jwt when that was requested and
//   the resource server issues JWTs; another requested_token_type is invalid_request).
// - JWT bearer (RFC 7523 §2.1, §3): `assertion` verified with jose against jwt_bearer.jwks:
//   signature, iss = jwt_bearer.issuer (when given), sub (= jwt_bearer.subject when given), aud =
//   the token endpoint or the issuer, exp and jti required, a jti seen before (until its exp) is a
//   replay: invalid_grant. Answers an AccessToken for that sub, target and scope as above.
// Both count "token-exchange:ok:<aud or ->" / "jwt-bearer:ok:<aud or ->" in {test}/stats, besides
// the usual "<grant_type>:<outcome>" key (the grant type being the full urn).

import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as querystring from 'node:querystring';
import {
  calculateJwkThumbprint, createLocalJWKSet, EmbeddedJWK, jwtVerify,
} from 'jose';

// oidc-provider prints its NOTICEs with console.info (stdout): keep stdout for the ready line,
// from before oidc-provider loads (hence its dynamic import).
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider, errors } = await import('oidc-provider');

function fail(message, error) {
  console.error(`oidc test server: ${message}`);
  if (error) console.error(error);
  process.exit(2);
}

function readConfig() {
  return new Promise((resolve) => {
    let buffered = '';
    const onEnd = () => fail('stdin closed before the configuration line');
    const onData = (chunk) => {
      buffered += chunk;
      const end = buffered.indexOf('\n');
      if (end === -1) return;
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.pause();
      try {
        resolve(JSON.parse(buffered.slice(0, end)));
      } catch (error) {
        fail('the first stdin line is not JSON', error);
      }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
  });
}

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

const config = await readConfig();
const apiClient = config.api_client;
if (!apiClient?.client_id || !apiClient?.client_secret) {
  fail('the configuration needs api_client: {"client_id", "client_secret"}');
}

// Both servers are bound first, so the issuer and the API's resource indicator carry real ports.
const opServer = http.createServer();
const apiServer = http.createServer();
const [opPort, apiPort] = await Promise.all([listen(opServer), listen(apiServer)]);
const issuer = `http://127.0.0.1:${opPort}`;
const apiOrigin = `http://127.0.0.1:${apiPort}`;
const apiResource = `${apiOrigin}/api`;

const resourceServers = {
  [apiResource]: {
    scope: config.api_scope ?? 'api:read api:write',
    accessTokenFormat: 'opaque',
  },
  ...config.resource_servers,
};

const defaultResourceIndicator = config.default_resource === 'api'
  ? apiResource
  : (config.default_resource ?? undefined);

const tokenExtras = new WeakMap(); // AccessToken -> its extra claims (act)
const calls = new Map(); // grant_type -> token requests received
const stats = new Map(); // "grant_type:outcome", "grant_revocations", "api:STATUS" -> count
let holding = 0; // refresh answers held back right now (refresh_delay_ms)

function count(name) {
  stats.set(name, (stats.get(name) ?? 0) + 1);
}

// The people who may log in (logins.accounts), and the password grant's owner: findAccount
// knows these and nobody else (oidc-provider's default knows everyone, with a NOTICE).
const accounts = new Map(Object.entries(config.logins?.accounts ?? {}));
const knownAccounts = new Set(accounts.keys());
if (config.password_grant) knownAccounts.add(config.password_grant.username);

async function findAccount(ctx, sub) {
  if (!knownAccounts.has(sub)) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { sub };
    },
  };
}

const baseFeatures = {
  // A person's pages (logins): oidc-provider's own login, consent and user-code pages.
  devInteractions: { enabled: Boolean(config.logins) },
  deviceFlow: { enabled: Boolean(config.logins) },
  clientCredentials: { enabled: true },
  introspection: {
    enabled: true,
    // The API's client may introspect any token; a client may introspect its own.
    async allowedPolicy(ctx, client, token) {
      return client.clientId === apiClient.client_id || client.clientId === token.clientId;
    },
  },
  revocation: {
    enabled: true,
    // RFC 7009 §2.1: a client may revoke only its own tokens (oidc-provider's default, minus
    // its NOTICE): invalid_request otherwise.
    async allowedPolicy(ctx, client, token) {
      if (token.clientId !== client.clientId) {
        throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
      }
      return true;
    },
  },
  resourceIndicators: {
    enabled: true,
    async defaultResource(ctx, client, oneOf) {
      return oneOf ?? defaultResourceIndicator;
    },
    async getResourceServerInfo(ctx, resourceIndicator, client) {
      const info = resourceServers[resourceIndicator];
      if (!info) throw new errors.InvalidTarget();
      return info;
    },
    async useGrantedResource() {
      return false;
    },
  },
};

if (config.dpop?.require_nonce) {
  baseFeatures.dPoP = {
    enabled: true,
    nonceSecret: randomBytes(32),
    requireNonce() {
      return true;
    },
  };
}

const features = { ...baseFeatures };
for (const [name, value] of Object.entries(config.features ?? {})) {
  features[name] = { ...baseFeatures[name], ...value };
}

const providerConfig = {
  clients: [
    ...(config.clients ?? []),
    {
      client_id: apiClient.client_id,
      client_secret: apiClient.client_secret,
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  features,
  ttl: {
    // Numbers, not oidc-provider's default functions (which print a NOTICE on first use).
    ClientCredentials: 600,
    AccessToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    AuthorizationCode: 60,
    DeviceCode: 600,
    Grant: 14 * 24 * 3600,
    IdToken: 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    ...config.ttl,
  },
  // Every authorization request needs PKCE (the default asks it of public clients only).
  pkce: { required: () => true },
  findAccount,
  // The exchange's `act` claim (tokenExtras, set by the grants below) rides in the token's
  // `extra`, which introspection spreads into its answer.
  async extraTokenClaims(ctx, token) {
    return tokenExtras.get(token);
  },
  ...config.provider,
};

let provider;
try {
  provider = new Provider(issuer, providerConfig);
} catch (error) {
  fail('oidc-provider refused the configuration', error);
}

if (config.password_grant) {
  const owner = config.password_grant;
  const scope = 'offline_access';
  // Test-only: the resource owner password grant, issuing what an authorization code
  // exchange with offline_access would (a Grant, an opaque access token, a refresh token).
  provider.registerGrantType('password', async (ctx) => {
    const { client, params } = ctx.oidc;
    if (params.username !== owner.username || params.password !== owner.password) {
      throw new errors.InvalidGrant('invalid resource owner credentials');
    }
    const grant = new provider.Grant({ accountId: owner.username, clientId: client.clientId });
    grant.addOIDCScope(scope);
    const grantId = await grant.save();
    const at = new provider.AccessToken({
      accountId: owner.username, client, grantId, gty: 'password', scope,
    });
    const rt = new provider.RefreshToken({
      accountId: owner.username,
      client,
      grantId,
      gty: 'password',
      scope,
      rotations: 0,
      iiat: Math.floor(Date.now() / 1000),
    });
    ctx.oidc.entity('AccessToken', at);
    ctx.oidc.entity('RefreshToken', rt);
    ctx.body = {
      access_token: await at.save(),
      token_type: 'Bearer',
      expires_in: at.expiration,
      refresh_token: await rt.save(),
      scope,
    };
  }, ['username', 'password', 'scope']);
}

// -- RFC 8693 token exchange and RFC 7523 JWT bearer (see the header) --------------------------

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TT = 'urn:ietf:params:oauth:token-type:';
const JWT_TYPES = new Set([`${TT}jwt`, `${TT}id_token`]);

// An error answer whose error_description says which rule refused (oidc-provider's own error
// classes keep a fixed description and put the detail where clients never see it).
function refused(code, description) {
  return new errors.CustomOIDCProviderError(code, description);
}

function single(value, name) {
  // The grants below allow `resource` and `audience` more than once (RFC 8693 §2.1) to refuse
  // several targets with RFC 8693's error rather than oidc-provider's generic duplicate one.
  const values = [value ?? []].flat();
  if (values.length > 1) throw refused('invalid_target', `only one ${name} is supported`);
  return values[0];
}

// The resource server a token is for: an indicator, or a resource server's `audience`, then
// described by getResourceServerInfo as for oidc-provider's own grants (so features overrides
// apply here too).
async function resolveTarget(ctx) {
  const { params, client } = ctx.oidc;
  const wanted = single(params.resource, 'resource') ?? single(params.audience, 'audience')
    ?? defaultResourceIndicator;
  if (wanted === undefined) return undefined;
  const byAudience = Object.keys(resourceServers)
    .find((indicator) => resourceServers[indicator].audience === wanted);
  const indicator = resourceServers[wanted] ? wanted : byAudience;
  if (!indicator) throw refused('invalid_target', 'unknown resource or audience');
  const info = await features.resourceIndicators.getResourceServerInfo(ctx, indicator, client);
  return new provider.ResourceServer(indicator, info);
}

function keySet(jwks, name) {
  if (!jwks?.keys?.length) fail(`${name}.jwks needs {"keys": [...]}`);
  return createLocalJWKSet(jwks);
}

async function verifiedJwt(token, jwks, options, what) {
  try {
    return (await jwtVerify(token, jwks, { clockTolerance: 5, ...options })).payload;
  } catch (error) {
    // jose's codes (ERR_JWS_SIGNATURE_VERIFICATION_FAILED, ERR_JWT_EXPIRED, ...) and claim names
    // only: never the token.
    const claim = error.claim ? ` (${error.claim})` : '';
    throw refused('invalid_grant', `${what} refused: ${error.code ?? 'invalid'}${claim}`);
  }
}

// Issues an AccessToken for `accountId` (under a new Grant, so introspection and revocation
// treat it as any other), bound to the request's resource server, living at most `maxLife`.
async function issueAccessToken(ctx, { accountId, gty, scope, maxLife, extra, jwtRequested }) {
  const { client } = ctx.oidc;
  if (maxLife !== undefined && maxLife < 1) {
    throw refused('invalid_grant', 'the subject token has expired');
  }
  const resourceServer = await resolveTarget(ctx);
  const grant = new provider.Grant({ accountId, clientId: client.clientId });
  let scopes = [...new Set((scope ?? '').split(' ').filter(Boolean))];
  if (resourceServer) {
    scopes = scopes.filter((value) => resourceServer.scopes.has(value));
    grant.addResourceScope(resourceServer.identifier(), scopes.join(' '));
  }
  if (jwtRequested && resourceServer?.accessTokenFormat !== 'jwt') {
    throw refused('invalid_request', 'a JWT cannot be issued for this target');
  }
  const grantId = await grant.save();
  const at = new provider.AccessToken({
    accountId, client, grantId, gty, scope: scopes.join(' ') || undefined,
  });
  if (resourceServer) at.resourceServer = resourceServer;
  if (extra) tokenExtras.set(at, extra);
  if (maxLife !== undefined) at.expiresIn = Math.min(at.expiration, maxLife);
  ctx.oidc.entity('AccessToken', at);
  const value = await at.save();
  const aud = at.aud ?? '-';
  return {
    body: {
      access_token: value,
      token_type: at.tokenType,
      expires_in: at.expiration,
      ...(at.scope ? { scope: at.scope } : {}),
    },
    aud,
  };
}

const exchangeConfig = config.token_exchange;
const exchangeJwks = exchangeConfig?.jwks ? keySet(exchangeConfig.jwks, 'token_exchange') : null;

// A subject or actor token: {sub, exp, act}. By introspection (access tokens) or by signature.
async function validatedToken(token, type, name) {
  if (typeof token !== 'string' || !token) {
    throw refused('invalid_request', `missing required parameter '${name}_token'`);
  }
  if (typeof type !== 'string' || !type) {
    throw refused('invalid_request', `missing required parameter '${name}_token_type'`);
  }
  if (type === `${TT}access_token`) {
    const info = await introspect(token);
    if (!info.active) throw refused('invalid_grant', `the ${name} token is not active`);
    return { sub: info.sub ?? info.client_id, exp: info.exp, act: info.act, scope: info.scope };
  }
  if (JWT_TYPES.has(type)) {
    if (!exchangeJwks) throw refused('invalid_request', `${name}_token_type not supported here`);
    const payload = await verifiedJwt(token, exchangeJwks, {
      issuer: exchangeConfig.issuer, requiredClaims: ['exp', 'sub'],
    }, `${name} token`);
    return { sub: payload.sub, exp: payload.exp, act: payload.act, scope: payload.scope };
  }
  throw refused('invalid_request', `unsupported ${name}_token_type`);
}

if (exchangeConfig) {
  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const { params } = ctx.oidc;
    const requested = params.requested_token_type ?? `${TT}access_token`;
    if (requested !== `${TT}access_token` && requested !== `${TT}jwt`) {
      throw refused('invalid_request', 'unsupported requested_token_type');
    }
    if (params.actor_token_type && !params.actor_token) {
      throw refused('invalid_request', 'actor_token_type without actor_token');
    }
    const subject = await validatedToken(
      params.subject_token, params.subject_token_type, 'subject',
    );
    const actor = params.actor_token
      ? await validatedToken(params.actor_token, params.actor_token_type, 'actor')
      : null;
    const act = actor ? { sub: actor.sub, ...(actor.act ? { act: actor.act } : {}) } : undefined;
    const { body, aud } = await issueAccessToken(ctx, {
      accountId: subject.sub,
      gty: 'token_exchange',
      scope: params.scope ?? subject.scope,
      maxLife: subject.exp - Math.floor(Date.now() / 1000),
      extra: act ? { act } : undefined,
      jwtRequested: requested === `${TT}jwt`,
    });
    ctx.body = { ...body, issued_token_type: requested };
    count(`token-exchange:ok:${aud}`);
  }, [
    'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
    'requested_token_type', 'audience', 'resource', 'scope',
  ], ['audience', 'resource']);
}

const bearerConfig = config.jwt_bearer;
const bearerJwks = bearerConfig ? keySet(bearerConfig.jwks, 'jwt_bearer') : null;
const seenAssertions = new Map(); // "iss jti" -> exp (a replay is refused until then)

if (bearerConfig) {
  provider.registerGrantType(JWT_BEARER, async (ctx) => {
    const { params } = ctx.oidc;
    if (typeof params.assertion !== 'string' || !params.assertion) {
      throw refused('invalid_request', "missing required parameter 'assertion'");
    }
    const payload = await verifiedJwt(params.assertion, bearerJwks, {
      issuer: bearerConfig.issuer,
      subject: typeof bearerConfig.subject === 'string' ? bearerConfig.subject : undefined,
      audience: [provider.urlFor('token'), provider.issuer],
      requiredClaims: ['exp', 'jti', 'sub', 'iss', 'aud'],
    }, 'assertion');
    if (Array.isArray(bearerConfig.subject) && !bearerConfig.subject.includes(payload.sub)) {
      throw refused('invalid_grant', 'assertion refused: unexpected subject (sub)');
    }
    const now = Math.floor(Date.now() / 1000);
    for (const [key, exp] of seenAssertions) if (exp < now - 60) seenAssertions.delete(key);
    const key = `${payload.iss} ${payload.jti}`;
    if (seenAssertions.has(key)) throw refused('invalid_grant', 'assertion refused: jti replayed');
    seenAssertions.set(key, payload.exp);
    const { body, aud } = await issueAccessToken(ctx, {
      accountId: payload.sub, gty: 'jwt_bearer', scope: params.scope,
    });
    ctx.body = body;
    count(`jwt-bearer:ok:${aud}`);
  }, ['assertion', 'audience', 'resource', 'scope'], ['audience', 'resource']);
}

provider.on('grant.revoked', () => count('grant_revocations'));

// devInteractions' login form (POST /interaction/:uid, prompt=login) signs in whatever name it is
// given and ignores the password: check both here, before oidc-provider reads the form. A wrong
// pair is sent back to the same interaction (303), whose page is the login form again, as a real
// login page answers a wrong password. oidc-provider then reads the form already parsed, from
// req.body (lib/shared/selective_body.js's documented fallback; it warns once on stderr).
// The person's other answers are counted on the way (see {test}/stats).
async function checkInteraction(ctx, next) {
  if (ctx.method === 'GET' && /^\/interaction\/[^/]+\/abort$/.test(ctx.path)) {
    count('interaction:aborted');
  }
  if (
    ctx.method !== 'POST'
    || !/^\/interaction\/[^/]+$/.test(ctx.path)
    || !ctx.is('application/x-www-form-urlencoded')
  ) {
    await next();
    return;
  }
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const form = querystring.parse(Buffer.concat(chunks).toString('utf8'));
  if (form.prompt === 'login') {
    const expected = typeof form.login === 'string' ? accounts.get(form.login) : undefined;
    if (expected === undefined || form.password !== expected) {
      count('login:refused');
      ctx.status = 303;
      ctx.set('location', ctx.path);
      ctx.set('cache-control', 'no-store');
      ctx.body = '';
      return;
    }
    count('login:ok');
  } else if (form.prompt === 'consent') {
    count('consent:ok');
  }
  ctx.req.body = form;
  await next();
}

if (config.logins) provider.use(checkInteraction);

// oidc-provider validates static clients lazily, on their first use (a bad one then answers
// 400 invalid_client_metadata at the token endpoint): load each now, so a bad one stops the start.
for (const { client_id: clientId } of providerConfig.clients) {
  try {
    await provider.Client.find(clientId);
  } catch (error) {
    fail(`oidc-provider refused client ${JSON.stringify(clientId)}: ${error.message}`
      + (error.error_description ? ` (${error.error_description})` : ''));
  }
}

// Token requests, counted on the server by grant_type (the "?" key: none could be read).
// Post-processing: once oidc-provider has routed and parsed the request, whatever the outcome.
provider.use(async (ctx, next) => {
  try {
    await next();
  } finally {
    if (ctx.method === 'POST' && ctx.oidc?.route === 'token') {
      const grantType = ctx.oidc.params?.grant_type || '?';
      calls.set(grantType, (calls.get(grantType) ?? 0) + 1);
      count(`${grantType}:${ctx.status === 200 ? 'ok' : (ctx.body?.error ?? `http-${ctx.status}`)}`);
      if (grantType === 'refresh_token' && config.refresh_delay_ms) {
        // oidc-provider has rotated (and stored): the answer is only late, as over a slow link.
        holding += 1;
        try {
          await new Promise((resolve) => { setTimeout(resolve, config.refresh_delay_ms); });
        } finally {
          holding -= 1;
        }
      }
    }
  }
});

// A 500 from oidc-provider says only "oops! something went wrong": the cause goes to stderr
// (OidcProviderServer.log()).
provider.on('server_error', (ctx, error) => console.error('oidc-provider server_error:', error));

opServer.on('request', provider.callback());

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const introspectionEndpoint = discovery.introspection_endpoint;

function bearerError(res, error, description) {
  // RFC 6750 §3: no error code when the request carried no token at all.
  const params = [`realm="${apiOrigin}"`];
  if (error) params.push(`error="${error}"`);
  if (description) params.push(`error_description="${description}"`);
  sendJson(res, 401, { ok: false, error: error ?? null }, {
    'www-authenticate': `Bearer ${params.join(', ')}`,
  });
}

async function introspect(token) {
  const response = await fetch(introspectionEndpoint, {
    method: 'POST',
    headers: { accept: 'application/json' },
    body: new URLSearchParams({
      token,
      token_type_hint: 'access_token',
      client_id: apiClient.client_id,
      client_secret: apiClient.client_secret,
    }),
  });
  if (!response.ok) {
    throw new Error(`introspection answered HTTP ${response.status}: ${await response.text()}`);
  }
  return response.json();
}

// DPoP proofs the API accepted, by jti: a proof is single-use (RFC 9449 §11.1).
const seenProofs = new Set();
const dpopStats = { accepted: 0, refused: 0 };

function dpopError(res, error, description) {
  dpopStats.refused += 1;
  sendJson(res, 401, { ok: false, error }, {
    'www-authenticate': `DPoP error="${error}", error_description="${description}", algs="ES256 EdDSA"`,
  });
}

// RFC 9449 §4.3 and §7: the proof's signature by its own jwk, typ, htm, htu, iat, a fresh jti,
// ath (the token's hash), and the key's thumbprint equal to the token's cnf.jkt.
async function checkProof(req, token, jkt) {
  const proof = req.headers.dpop;
  if (typeof proof !== 'string') return 'no DPoP proof';
  let verified;
  try {
    verified = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'],
      maxTokenAge: '60s',
      clockTolerance: 5,
    });
  } catch (error) {
    return `not a valid proof (${error.code ?? error.message})`;
  }
  const { payload, protectedHeader } = verified;
  const htu = `${apiOrigin}${new URL(req.url, apiOrigin).pathname}`;
  const ath = createHash('sha256').update(token).digest('base64url');
  if (payload.htm !== req.method) return 'htm';
  if (payload.htu !== htu) return 'htu';
  if (payload.ath !== ath) return 'ath';
  if (typeof payload.jti !== 'string' || seenProofs.has(payload.jti)) return 'jti replayed';
  if (await calculateJwkThumbprint(protectedHeader.jwk) !== jkt) return 'another key';
  seenProofs.add(payload.jti);
  return null;
}

async function me(req, res) {
  try {
    await checkedMe(req, res);
  } catch (error) {
    count('api:500');
    throw error;
  }
  count(`api:${res.statusCode}`);
}

async function checkedMe(req, res) {
  const header = req.headers.authorization;
  if (header === undefined) {
    bearerError(res);
    return;
  }
  const match = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  if (!match) {
    bearerError(res, 'invalid_token', 'not a Bearer or DPoP token');
    return;
  }
  const scheme = match[1].toLowerCase();
  const info = await introspect(match[2]);
  if (!info.active) {
    bearerError(res, 'invalid_token', 'the token is not active');
    return;
  }
  if (info.cnf?.jkt && scheme !== 'dpop') {
    // RFC 9449 §7.2: a DPoP-bound token is not a Bearer token.
    bearerError(res, 'invalid_token', 'DPoP-bound token presented as a Bearer token');
    return;
  }
  if (scheme === 'dpop') {
    if (!info.cnf?.jkt) {
      dpopError(res, 'invalid_token', 'not a DPoP-bound token');
      return;
    }
    const problem = await checkProof(req, match[2], info.cnf.jkt);
    if (problem) {
      dpopError(res, 'invalid_dpop_proof', problem);
      return;
    }
    dpopStats.accepted += 1;
  }
  if (info.aud !== undefined && ![info.aud].flat().includes(apiResource)) {
    bearerError(res, 'invalid_token', 'the token is for another audience');
    return;
  }
  sendJson(res, 200, {
    ok: true,
    client_id: info.client_id,
    jkt: info.cnf?.jkt ?? null,
    sub: info.sub ?? null,
    scope: info.scope ?? null,
    aud: info.aud ?? null,
  });
}

apiServer.on('request', (req, res) => {
  const { pathname } = new URL(req.url, apiOrigin);
  const route = `${req.method} ${pathname}`;
  // The request body is not used: drain it so keep-alive connections stay usable.
  req.resume();
  req.once('end', () => {
    let answer;
    switch (route) {
      case 'GET /api/me':
        answer = me(req, res);
        break;
      case 'GET /api/me/':
        // A same-origin redirect before any check, as a framework's trailing-slash rule.
        res.writeHead(301, { location: '/api/me', 'content-length': 0 });
        res.end();
        break;
      case 'GET /test/calls':
        answer = sendJson(res, 200, Object.fromEntries(calls));
        break;
      case 'GET /test/dpop':
        answer = sendJson(res, 200, dpopStats);
        break;
      case 'GET /test/holding':
        answer = sendJson(res, 200, { holding });
        break;
      case 'GET /test/stats':
        answer = sendJson(res, 200, Object.fromEntries(stats));
        break;
      case 'POST /test/reset':
        calls.clear();
        stats.clear();
        answer = sendJson(res, 200, {});
        break;
      default:
        answer = sendJson(res, 404, { error: 'not_found', route });
    }
    Promise.resolve(answer).catch((error) => {
      console.error(error);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', detail: String(error) });
      else res.destroy();
    });
  });
});

function shutdown() {
  opServer.closeAllConnections();
  apiServer.closeAllConnections();
  process.exit(0);
}
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, shutdown);

process.stdout.write(`${JSON.stringify({
  issuer,
  api: `${apiOrigin}/api/me`,
  resource: apiResource,
  test: `${apiOrigin}/test`,
  token_endpoint: discovery.token_endpoint,
  oidc_provider: (await import('oidc-provider/package.json', { with: { type: 'json' } })).default.version,
})}\n`);
