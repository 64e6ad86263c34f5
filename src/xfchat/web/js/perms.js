// Permission bits, as the README lists them (64-bit sets travel as decimal strings).
// The client computes them only to decide what to offer; the server decides.

export const P = {
  VIEW_CHANNEL: 1n << 0n,
  SEND_MESSAGES: 1n << 1n,
  READ_MESSAGE_HISTORY: 1n << 2n,
  ADD_REACTIONS: 1n << 3n,
  ATTACH_FILES: 1n << 4n,
  EMBED_LINKS: 1n << 5n,
  MENTION_EVERYONE: 1n << 6n,
  MANAGE_MESSAGES: 1n << 7n,
  CONNECT: 1n << 8n,
  SPEAK: 1n << 9n,
  MUTE_MEMBERS: 1n << 10n,
  DEAFEN_MEMBERS: 1n << 11n,
  MOVE_MEMBERS: 1n << 12n,
  CREATE_INVITE: 1n << 13n,
  CHANGE_NICKNAME: 1n << 14n,
  MANAGE_NICKNAMES: 1n << 15n,
  KICK_MEMBERS: 1n << 16n,
  BAN_MEMBERS: 1n << 17n,
  MANAGE_CHANNELS: 1n << 18n,
  MANAGE_ROLES: 1n << 19n,
  MANAGE_SERVER: 1n << 20n,
  VIEW_AUDIT_LOG: 1n << 21n,
  MODERATE_MEMBERS: 1n << 22n,
  MANAGE_WEBHOOKS: 1n << 23n,
  ADMINISTRATOR: 1n << 40n,
};
const ALL = Object.values(P).reduce((a, b) => a | b, 0n);
const CONVERSATION =
  P.VIEW_CHANNEL | P.SEND_MESSAGES | P.READ_MESSAGE_HISTORY | P.ADD_REACTIONS | P.ATTACH_FILES | P.EMBED_LINKS;
const TIMED_OUT_KEEPS = P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY;

export const PERMISSION_NAMES = Object.keys(P);
export const label = (name) => name.toLowerCase().replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

const big = (s) => BigInt(s || "0");

function timedOut(member) {
  return member && member.timed_out_until && new Date(member.timed_out_until) > new Date();
}

// When your timeout in this server ends (a Date), or null if you are not timed out.
export function timedOutUntil(server) {
  return server && timedOut(server.member) ? new Date(server.member.timed_out_until) : null;
}

function base(server) {
  const member = server.member;
  if (!member) return { all: false, perms: 0n };
  if (server.owner_id === member.user.id) return { all: true, perms: ALL };
  let perms = 0n;
  for (const role of server.roles) {
    if (role.is_default || member.role_ids.includes(role.id)) perms |= big(role.permissions);
  }
  if (perms & P.ADMINISTRATOR) return { all: true, perms: ALL };
  return { all: false, perms };
}

export function serverPermissions(server) {
  const { all, perms } = base(server);
  if (all) return ALL;
  return timedOut(server.member) ? perms & TIMED_OUT_KEEPS : perms;
}

function applyOverrides(perms, overrides, server) {
  const member = server.member;
  const everyone = server.roles.find((r) => r.is_default);
  let rolesAllow = 0n;
  let rolesDeny = 0n;
  let eAllow = 0n;
  let eDeny = 0n;
  let mAllow = 0n;
  let mDeny = 0n;
  for (const o of overrides || []) {
    if (o.kind === "role" && everyone && o.id === everyone.id) {
      eAllow = big(o.allow);
      eDeny = big(o.deny);
    } else if (o.kind === "role" && member.role_ids.includes(o.id)) {
      rolesAllow |= big(o.allow);
      rolesDeny |= big(o.deny);
    } else if (o.kind === "member" && o.id === member.user.id) {
      mAllow = big(o.allow);
      mDeny = big(o.deny);
    }
  }
  for (const [allow, deny] of [[eAllow, eDeny], [rolesAllow, rolesDeny], [mAllow, mDeny]]) {
    perms = (perms & ~deny) | allow;
  }
  return perms;
}

// Whether you may manage some of the server's channels: MANAGE_CHANNELS server-wide, or
// in a channel or category whose overrides grant it (there alone, as the server judges).
export function managesChannels(server) {
  return has(serverPermissions(server), P.MANAGE_CHANNELS) || server.channels.some((c) => has(channelPermissions(server, c), P.MANAGE_CHANNELS));
}

// The server's text channels whose webhooks you may manage (MANAGE_WEBHOOKS there, as
// the server judges it: overrides included), in no particular order.
export function webhookChannels(server) {
  return server.channels.filter((c) => c.kind === "text" && has(channelPermissions(server, c), P.MANAGE_WEBHOOKS));
}

export function channelPermissions(server, channel) {
  if (!server) return CONVERSATION; // a conversation: its participants may do these
  const { all, perms: basePerms } = base(server);
  if (all) return ALL;
  let perms = basePerms;
  if (channel.permissions_synced && channel.parent_id) {
    // (its category's overrides come with it: the category may be hidden from us)
    const parent = server.channels.find((c) => c.id === channel.parent_id);
    const followed = channel.category_overrides || (parent && parent.overrides);
    if (followed) perms = applyOverrides(perms, followed, server);
  }
  perms = applyOverrides(perms, channel.overrides, server);
  if (timedOut(server.member)) perms &= TIMED_OUT_KEEPS;
  return perms & P.VIEW_CHANNEL ? perms : 0n;
}

// (The owner and ADMINISTRATOR get ALL from base(), as the server computes it: an
// ADMINISTRATOR bit allowed by a channel override grants nothing, there as here.)
export const has = (perms, bit) => (perms & bit) === bit;
