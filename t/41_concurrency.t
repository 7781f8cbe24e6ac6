# Concurrent writers on different nodes: one committed order, every node
# converges on the last committed version, conditional PUTs give exactly
# one winner, and a GET racing updates and deletes never sees a mix of
# bytes.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for node_url);
use CSNode;
use Digest::SHA qw(sha256_hex);
use POSIX ();

my $na = CSNode->new('c41a', replicas => 2)->start;
my $nb = CSNode->new('c41b', replicas => 2)->start;
my @urls = (node_url(), $na->url, $nb->url);

# Run CODE in N forked children; each returns a line of text.
sub parallel {
    my ($n, $code) = @_;
    my @kids;
    for my $i (0 .. $n - 1) {
        pipe my $r, my $w or die $!;
        my $pid = fork // die $!;
        if (!$pid) {
            close $r;
            print $w $code->($i);
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my @out;
    for my $k (@kids) {
        my $fh = $k->[1];
        local $/;
        push @out, scalar <$fh>;
        waitpid $k->[0], 0;
    }
    return @out;
}

# 1. Conditional creates from all nodes at once: exactly one 201.
{
    my $key = '/files/' . unique_key('race-create') . '.txt';
    my @st = parallel(12, sub {
        my $i = shift;
        my $r = req(PUT => $urls[$i % 3] . $key, "writer $i\n",
                    'If-None-Match' => '*');
        return $r->code . " $i";
    });
    my @won = grep { /^201 / } @st;
    is scalar(@won), 1, 'exactly one If-None-Match: * PUT wins';
    is scalar(grep { /^412 / } @st), 11, 'all others get 412';
    my ($winner) = $won[0] =~ /^201 (\d+)/;
    for my $u (@urls) {
        is req(GET => $u . $key)->content, "writer $winner\n",
            "every node serves the winner's bytes ($u)";
    }
}

# 2. Unconditional PUTs of one key from all nodes: every node converges on
#    the version the registry committed last.
{
    my $key = '/files/' . unique_key('race-put') . '.bin';
    my @res = parallel(15, sub {
        my $i = shift;
        my $body = "body of writer $i\n" x (1000 + $i * 37);
        my $r = req(PUT => $urls[$i % 3] . $key, $body);
        return join ' ', $r->code, $r->header('X-ClusterStorage-Version') // 0,
            sha256_hex($body);
    });
    my %by_version = map { my @f = split ' '; ($f[1] => $f[2]) } @res;
    is scalar(grep { /^20[14] / } @res), 15, 'every PUT was committed';
    is scalar(keys %by_version), 15, 'every PUT got its own version';
    my ($last) = sort { $b <=> $a } keys %by_version;
    for my $u (@urls) {
        my $g = req(GET => $u . $key);
        is $g->header('X-ClusterStorage-Version'), $last,
            "$u serves the last committed version";
        is sha256_hex($g->content), $by_version{$last},
            "$u serves exactly that version's bytes";
    }
}

# 3. GETs racing updates and deletes: each answer is a whole version or 404.
{
    my $key = '/files/' . unique_key('race-get') . '.bin';
    my %valid;
    my @bodies = map { my $c = chr(65 + $_); ($c x (50_000 + 7_919 * $_)) } 0 .. 7;
    $valid{ sha256_hex($_) } = 1 for @bodies;
    is req(PUT => $urls[0] . $key, $bodies[0])->code, 201, 'initial version';
    my $writer = fork // die $!;
    if (!$writer) {
        my $done = 0;           # writes answered 2xx, the exit status
        for my $round (1 .. 40) {
            my $i = $round % @bodies;
            my $r = $round % 9 == 0
                ? req(DELETE => $urls[$round % 3] . $key)
                : req(PUT => $urls[$round % 3] . $key, $bodies[$i]);
            $done++ if $r->is_success;
        }
        POSIX::_exit($done);
    }
    my @res = parallel(6, sub {
        my $i = shift;
        my ($ok, @bad) = (0);
        for (1 .. 40) {
            my $r = req(GET => $urls[$i % 3] . $key);
            next if $r->code == 404 || $r->code == 503;
            if ($r->code == 200 && $valid{ sha256_hex($r->content) }
                && length($r->content) == $r->header('Content-Length')) {
                $ok++;
            }
            else {
                push @bad, $r->code . ' ' . length($r->content);
            }
        }
        return join ',', "ok=$ok", @bad;
    });
    waitpid $writer, 0;
    my $writes = $? >> 8;
    $_ //= '' for @res;
    is scalar(grep { /^ok=\d+/ } @res), 6, 'every reader reported back';
    my $whole = 0;
    $whole += $_ for map { /^ok=(\d+)/ ? $1 : 0 } @res;
    is join('', map { s/^ok=\d+,?//r } @res), '',
        'no GET returned a partial or mixed body';
    ok $whole > 0, "the racing GETs saw whole versions ($whole answers of 200)";
    ok $writes > 0, "the writer's updates and deletes went through ($writes of 40)";
}

$na->stop;
$nb->stop;
done_testing;
