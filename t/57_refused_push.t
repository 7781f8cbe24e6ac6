# A holder whose copy rotted in place (same size, same mtime: nothing but
# its bytes tell) pushes it during a repair; the receiver checks the
# SHA-256 and refuses it (CS045).  The sender then reads its copy again,
# finds it damaged, quarantines it and stops being a holder (CS409)
# instead of pushing it again and again (SPEC promise 10).  While no good
# holder is up the key answers 503, never the damaged bytes; once the good
# holder is back, the key is served right everywhere.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;
use Digest::SHA qw(sha256_hex);

# The scrub would find the damage by itself: off here, to see the push.
my $noscrub = sub { $_[0] .= "\nClusterStorageScrubRate Off\n" };
my @n = map { CSNode->new("r57$_", replicas => 2, edit => $noscrub)->start }
    qw(a b c);
my ($A) = @n;
my %node = map { $_->name => $_ } @n;

my $body = join '', map { chr(($_ * 13 + 5) % 256) } 1 .. 200_000;
my $sha = sha256_hex($body);
# A key whose second copy goes to B or C (not to the suite's server n1,
# which this test cannot stop).
my ($key, $X);
for my $i (1 .. 20) {
    my $k = '/files/' . unique_key("push$i") . '.bin';
    is req(PUT => $A->url . $k, $body)->code, 201, "PUT $k on A";
    my @h;
    wait_for(20, sub { @h = $A->live_holders($k); @h == 2 });
    my ($other) = grep { $_ ne 'r57a' } @h;
    if ($other && $node{$other}) { ($key, $X) = ($k, $node{$other}); last }
}
ok $X, 'a key held by A and ' . ($X ? $X->name : '(none)')
    or BAIL_OUT('no key placed on B or C');
my ($Y) = grep { $_ != $A && $_ != $X } @n;

sub disk_sha { my ($node) = @_;
    open my $fh, '<:raw', $node->root . $key or return '';
    local $/; my $d = <$fh>; return sha256_hex($d // '') }
sub log_of { my ($node) = @_; local (@ARGV, $/) = $node->error_log; <> // '' }
sub quarantined { my ($node) = @_;
    opendir my $dh, $node->root . '/.clusterstorage/quarantine' or return 0;
    return scalar grep { !/^\./ } readdir $dh }

# A's copy rots: 16 bytes in place, size and mtime as they were.
my $path = $A->root . $key;
my $ref = "$ENV{CS_STATE_DIR}/r57.ref";
system('touch', '-r', $path, $ref) == 0 or die 'touch -r';
my $mtime = (stat $path)[9];
open my $fh, '+<:raw', $path or die "$path: $!";
seek $fh, 100_000, 0;
print $fh 'X' x 16;
close $fh;
system('touch', '-m', '-r', $ref, $path) == 0 or die 'touch -m -r';
unlink $ref;
is((stat $path)[9], $mtime, "A's copy kept its mtime");
isnt disk_sha($A), $sha, "A's copy is damaged";

# The good holder goes away: A is left to repair the key, with its copy.
ok $X->kill9, $X->name . ' (the good holder) killed';
ok wait_for(30, sub { log_of($A) =~ /CS409: .*\Q$key\E/ }),
    'A was refused, read its copy again and says it is damaged (CS409)';
# The repair pushed to the node the key's placement names: the third test
# node or the suite's server n1.
my $n1_log = Apache::Test::vars('t_logs') . '/error_log';
ok log_of($Y) =~ /CS045: replica of \Q$key\E/
   || do { local (@ARGV, $/) = $n1_log; (<> // '') =~ /CS045: replica of \Q$key\E/ },
    'the receiver refused the bytes (CS045)';
is quarantined($A), 1, "A's damaged copy is in the quarantine";
ok !grep({ $_ eq 'r57a' } $Y->live_holders($key)),
    'A is no longer registered as a holder';
ok disk_sha($Y) eq '' || disk_sha($Y) eq $sha,
    $Y->name . ' has no damaged bytes';
my $pushes = () = log_of($A) =~ /CS404: replicating \Q$key\E/g;
my $r = req(GET => $Y->url . $key);
is $r->code, 503, 'with no good holder up, GET answers 503, not bad bytes';

# The good holder is back: the key is right everywhere.
$X->start;
ok wait_for(30, sub { my $g = req(GET => $A->url . $key);
                      $g->code == 200 && sha256_hex($g->content) eq $sha }),
    'once the good holder is back, A serves the right bytes';
is disk_sha($A), $sha, "A's copy on disk is right again";
$r = req(GET => $Y->url . $key);
is sha256_hex($r->content), $sha, $Y->name . ' serves the right bytes';
cmp_ok $pushes, '<=', 1, 'A did not push its damaged copy again';

$_->stop for @n;
done_testing;
