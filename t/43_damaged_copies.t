# Copies changed on disk behind the module's back (SPEC promises 3 and 10):
# a copy edited in place (same size) or cut short is never served as the
# registry's version, also with the node-local cache vouching for the file;
# the node fetches a good copy from another holder instead of answering
# 503, and moves the damaged one to .clusterstorage/quarantine.  A damaged
# copy is never sent to a peer: a node asked for it answers 404 and the
# asking node takes it from a good holder.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for peer_auth sql sql_str);
use CSNode;
use Digest::SHA qw(sha256_hex);

# The background scrub (t/49) would find the damage too, at a moment of its
# own: off here, so that what is seen is the reading node's own check.
my $noscrub = sub { $_[0] .= "\nClusterStorageScrubRate Off\n" };
my @n = map { CSNode->new("d43$_", replicas => 3, edit => $noscrub)->start }
        qw(a b c);
my ($a, $b, $c) = @n;

my $key = '/files/' . unique_key('rot') . '.bin';
my $body = join '', map { chr(($_ * 7 + 3) % 256) } 1 .. 65536;
my $sha = sha256_hex($body);
my $r = req(PUT => $a->url . $key, $body);
is $r->code, 201, 'PUT of 64 KB on A';
my $v = $r->header('X-ClusterStorage-Version');
# Replication puts the other copies where the key's placement says (the
# suite's server n1 may be one of them); B and C take theirs by reading.
is req(GET => $_->url . $key)->code, 200, 'GET on ' . $_->name for $b, $c;
ok wait_for(20, sub { my %h = map { $_ => 1 } $a->live_holders($key);
                      $h{d43a} && $h{d43b} && $h{d43c} }),
    'A, B and C hold it'
    or diag explain $a->entry($key);
# No push of A's copy is still to come (a slow target's job is retried
# later, and would then meet the damage below first).
ok wait_for(30, sub { my $st = $a->status or return 0;
                      defined $st->{queue}{jobs} && $st->{queue}{jobs} == 0 }),
    "A's replication queue is empty";

sub disk_sha { my ($node) = @_;
    open my $fh, '<:raw', $node->root . $key or return '';
    local $/; my $d = <$fh>; return sha256_hex($d // '') }
sub quarantined { my ($node) = @_;
    opendir my $dh, $node->root . '/.clusterstorage/quarantine' or return 0;
    my @f = grep { !/^\./ } readdir $dh; return scalar @f }
sub log_has { my ($node, $re) = @_;
    local (@ARGV, $/) = $node->error_log; my $l = <> // ''; $l =~ $re }
# 16 bytes flipped in place: same size, the attributes untouched.
sub flip { my ($node) = @_;
    open my $fh, '+<:raw', $node->root . $key or die $!;
    seek $fh, 4096, 0; print $fh 'X' x 16; close $fh }

is disk_sha($_), $sha, 'the copy on ' . $_->name . ' is right' for @n;

# B: several hits first, so that the entry is in its node-local cache.
is req(GET => $b->url . $key)->content, $body, 'B serves the file' for 1 .. 3;
flip($b);
isnt disk_sha($b), $sha, "(B's copy is now damaged, same size)";
my $fetches = $b->counter('peer_fetches');
$r = req(GET => $b->url . $key);
is $r->code, 200, 'GET on B after the damage is 200';
is sha256_hex($r->content), $sha, 'with the right bytes, not the damaged ones';
is $r->header('X-ClusterStorage-Version'), $v, 'at the same version';
is $b->counter('peer_fetches'), $fetches + 1, 'B fetched a good copy';
is disk_sha($b), $sha, "B's copy on disk is right again";
is quarantined($b), 1, 'the damaged copy is in the quarantine';
ok log_has($b, qr/CS024: local copy of \Q$key\E .*does not match the registry/),
    'B logged what it found (CS024)';
ok log_has($b, qr/CS053: copy of \Q$key\E v$v is damaged/), 'and where it went (CS053)';

# C: cut short by 1,000 bytes.
truncate($c->root . $key, 65536 - 1000) or die "truncate: $!";
$r = req(GET => $c->url . $key);
is $r->code, 200, 'GET on C after truncating its copy is 200';
is sha256_hex($r->content), $sha, 'with the right bytes';
is disk_sha($c), $sha, "C's copy on disk is right again";
is quarantined($c), 1, "C's cut-short copy is in the quarantine";

# A damaged holder does not send its copy to a peer.
flip($a);
$r = req(GET => $a->url . $key, undef,
         'X-ClusterStorage-Version' => $v,
         'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v, node => 'd43b'));
is $r->code, 404, 'a peer asking A for its damaged copy gets 404';
ok log_has($a, qr/CS049: not sending \Q$key\E v$v to peer d43b/),
    'A logged that it did not send it (CS049)';
is quarantined($a), 1, "A's damaged copy is in the quarantine";
ok !grep({ $_ eq 'd43a' } $b->live_holders($key)),
    'A is no longer registered as a holder';
# The same with the size and mtime a fetcher sends along (the holder then
# needs no registry lookup for a good copy): a good one is sent, a damaged
# one is not.
my $mtime = sql('SELECT mtime FROM cs_files WHERE path = ' . sql_str($key));
my %hint = ('X-ClusterStorage-Version' => $v,
            'X-ClusterStorage-Expect' => "65536 $mtime",
            'X-ClusterStorage-Auth' => peer_auth('GET', $key, $v, node => 'd43a'));
$r = req(GET => $c->url . $key, undef, %hint);
is $r->code, 200, 'a peer GET with the expected size and mtime gets the good copy of C';
is sha256_hex($r->content), $sha, 'with the right bytes';
flip($c);
$r = req(GET => $c->url . $key, undef, %hint);
is $r->code, 404, 'and the damaged one of C is not sent';
is quarantined($c), 2, "C's damaged copy is in the quarantine";
# A new node takes the file from a good holder.
my $d = CSNode->new('d43d', replicas => 3, edit => $noscrub)->start;
my $bad = $d->counter('fetch_fail_checksum');
$r = req(GET => $d->url . $key);
is sha256_hex($r->content), $sha, 'a new node D serves the right bytes';
is $d->counter('fetch_fail_checksum'), $bad, 'no holder sent D damaged bytes';
$r = req(GET => $a->url . $key);
is sha256_hex($r->content), $sha, 'A serves the right bytes again (fetched)';

done_testing;
