# Node-to-node requests must prove themselves (SPEC §4, §6 promise 8): a
# missing or wrong MAC, a stale or future timestamp, a malformed header or
# version get 403/400 and change nothing; a signed replication of an old
# version gets 409; a peer fetch is answered from the local copy only (404
# for a version the node lacks, never a fetch of its own), and a correct
# one gets the bytes with X-ClusterStorage-Version and -SHA256.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for node_url tmp_files peer_auth
              node_counter file_sha256);
use CSNode;
use Digest::SHA qw(sha256_hex);

my $A = CSNode->new('n12a', replicas => 2);
$A->start;

my $key = '/files/' . unique_key('auth') . '.bin';
my $body1 = "first version\n" x 2000;
my $body2 = join '', map { chr(($_ * 13) % 256) } 1 .. 50_000;
my ($sha1, $sha2) = (sha256_hex($body1), sha256_hex($body2));

my $r = req(PUT => $A->url . $key, $body1);
is $r->code, 201, 'PUT v1 on A';
my $v1 = $r->header('X-ClusterStorage-Version');
$r = req(PUT => $A->url . $key, $body2);
is $r->code, 204, 'PUT v2 on A';
my $v2 = $r->header('X-ClusterStorage-Version');
ok $v2 > $v1, "versions $v1 < $v2";
my @holders;
ok wait_for(10, sub { (@holders = $A->live_holders($key)) == 2 }),
    'v2 reaches two holders' or diag explain $A->entry($key);

# A cold node that holds nothing of this key.
my $C = CSNode->new('n12c', replicas => 1);
$C->start;

my %url = (n12a => $A->url, n1 => node_url(), n12c => $C->url);
my @holder_urls = map { $url{$_} } grep { $url{$_} } @holders;
is scalar(@holder_urls), 2, "the holders (@holders) are nodes of this test";

sub peer_get {
    my ($base, %h) = @_;
    return req(GET => $base . $key, undef, %h);
}

# ---- forged peer fetches, on a holder ------------------------------------
my $served0 = $A->counter('peer_served');
my $now = int(time);
my @forged = (
    'version but no Auth' => [403],
        ['X-ClusterStorage-Version' => $v2],
    'a MAC made with another secret' => [403],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2,
                                              secret => 'wrong-secret-0123456789')],
    'a MAC for another key' => [403],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', "$key.other", $v2)],
    'a MAC for another version' => [403],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v1)],
    'a MAC for another method' => [403],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('PUT', $key, $v2)],
    'a right MAC with a timestamp 400 s old' => [403],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2,
                                              ts => $now - 400)],
    'a right MAC with a timestamp 400 s ahead' => [403],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2,
                                              ts => $now + 400)],
    'a garbage Auth header' => [403, 400],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => 'garbage'],
    'an Auth header without a MAC' => [403, 400],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => "n1 $now"],
    'an overlong Auth header' => [403, 400],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2)
                                    . ('a' x 5000)],
    'an overlong node name' => [403, 400],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2,
                                              node => 'x' x 300)],
    'an Auth header with a negative timestamp' => [403, 400],
        ['X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2,
                                              ts => -$now)],
    'a version header "abc"' => [400],
        ['X-ClusterStorage-Version' => 'abc',
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, 'abc')],
    'a version header "2x"' => [400],
        ['X-ClusterStorage-Version' => '2x',
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, '2x')],
    'Auth without a version header' => [400, 403],
        ['X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2)],
);
while (my ($what, $want, $h) = splice @forged, 0, 3) {
    my $g = peer_get($A->url, @$h);
    ok((grep { $g->code == $_ } @$want),
       "peer GET with $what: " . join(' or ', @$want))
        or diag 'got ' . $g->code;
    isnt sha256_hex($g->content), $sha2, '... and not the bytes';
}
is $A->counter('peer_served'), $served0,
    'none of them counted as a peer fetch served';

# ---- forged and stale replication PUTs -------------------------------------
my $evil = "evil bytes\n" x 100;
my $evil_sha = sha256_hex($evil);
for my $base ($A->url, node_url(), $C->url) {
    for my $ver ($v2, $v2 + 1) {
        $r = req(PUT => $base . $key, $evil,
                 'X-ClusterStorage-Version' => $ver,
                 'X-ClusterStorage-SHA256' => $evil_sha,
                 'X-ClusterStorage-Auth' => peer_auth('PUT', $key, $ver,
                                              secret => 'not-the-secret-at-all'));
        is $r->code, 403, "replication PUT v$ver with a wrong MAC on $base: 403";
    }
    $r = req(PUT => $base . $key, $evil,
             'X-ClusterStorage-Version' => $v2,
             'X-ClusterStorage-SHA256' => $evil_sha,
             'X-ClusterStorage-Auth' => peer_auth('PUT', $key, $v2,
                                                  ts => int(time) - 400));
    is $r->code, 403, "replication PUT with a stale timestamp on $base: 403";
    # Correctly signed, but an old version: refused.
    $r = req(PUT => $base . $key, $body1,
             'X-ClusterStorage-Version' => $v1,
             'X-ClusterStorage-SHA256' => $sha1,
             'X-ClusterStorage-Auth' => peer_auth('PUT', $key, $v1));
    is $r->code, 409, "signed replication PUT of the old version on $base: 409";
}
# Correctly signed, current version, but bytes that do not match the
# registry: discarded (the cold node must not keep or register them).
$r = req(PUT => $C->url . $key, $evil,
         'X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-SHA256' => $sha2,
         'X-ClusterStorage-Auth' => peer_auth('PUT', $key, $v2));
ok $r->code >= 400 && $r->code < 500,
    'signed replication PUT of the current version with wrong bytes: 4xx'
    or diag 'got ' . $r->code;
$r = req(PUT => $C->url . $key, $evil,
         'X-ClusterStorage-Version' => $v2,
         'X-ClusterStorage-SHA256' => $evil_sha,
         'X-ClusterStorage-Auth' => peer_auth('PUT', $key, $v2));
ok $r->code >= 400 && $r->code < 500,
    'signed replication PUT announcing a SHA-256 the registry lacks: 4xx'
    or diag 'got ' . $r->code;

ok !-e $C->root . $key, 'the cold node stored nothing';
is_deeply [tmp_files('n12c')], [], 'and kept no temp file';
is_deeply [$A->live_holders($key)], [@holders],
    'the holders are unchanged (the cold node is not registered)';
my $e = $A->entry($key);
is $e->{version}, $v2, 'the registry still has v2';
is $e->{sha256}, $sha2, 'with its SHA-256';
for my $h (@holders) {
    my $root = $h eq 'n1' ? CSTest::storage_root('n1') : $A->root;
    is file_sha256($root . $key), $sha2, "${h}'s copy is still v2";
}

# ---- peer fetches of a version the node does not hold ------------------
my $fetches0 = $C->counter('peer_fetches');
my $fails0 = $C->counter('fetch_failures');
$r = peer_get($C->url, 'X-ClusterStorage-Version' => $v2,
              'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2));
is $r->code, 404, 'signed peer GET of v2 on the cold node: 404';
is $C->counter('peer_fetches'), $fetches0,
    'the cold node did not fetch it for the peer';
is $C->counter('fetch_failures'), $fails0, '(nor tried to)';
ok !-e $C->root . $key, 'and has no copy';

$r = peer_get($A->url, 'X-ClusterStorage-Version' => $v1,
              'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v1));
is $r->code, 404, 'signed peer GET of the old v1 on a holder of v2: 404';
isnt sha256_hex($r->content), $sha1, '... without the old bytes';

# ---- a correct peer fetch --------------------------------------------------
$r = peer_get($A->url, 'X-ClusterStorage-Version' => $v2,
              'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v2,
                                                   node => 'n12c'));
is $r->code, 200, 'signed peer GET of v2 on a holder: 200';
is $r->header('X-ClusterStorage-Version'), $v2, 'with the version';
is $r->header('X-ClusterStorage-SHA256'), $sha2, 'and the SHA-256';
is sha256_hex($r->content), $sha2, 'and the right bytes';
is $A->counter('peer_served'), $served0 + 1, 'counted as one peer fetch served';

# ---- nothing changed, as clients see it -----------------------------------
for my $base ($A->url, node_url(), $C->url) {
    my $g = req(GET => $base . $key);
    is $g->code, 200, "client GET on $base";
    is sha256_hex($g->content), $sha2, '... has the v2 bytes';
    is $g->header('X-ClusterStorage-Version'), $v2, '... and version';
}

done_testing;
