# The registry on a Galera cluster behind haproxy (the README's topology
# B): two nodes whose DBDParams name one haproxy, which sends every
# connection to one member at a time and checks the members with
# conf/galera-check (Synced and ready, not just a handshake).  The member
# in use is killed with SIGKILL while both nodes write, then the one that
# took over is left alone outside the primary component:
#   - haproxy moves to another member, the nodes write again without a
#     restart, and every acknowledged write reads back through both nodes;
#   - a member that answers its handshake but is not Primary is not used:
#     the nodes answer 503 at once instead of hanging or writing nowhere.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req svc unique_key wait_for timed_req galera);
use CSNode;
use CSWriters;
use File::Copy qw(copy);
use Time::HiRes qw(time);

my $repo = $ENV{CS_REPO};
my %port = galera();
is scalar(keys %port), 3, 'a Galera cluster of three members started'
    or BAIL_OUT('no Galera cluster');

# ---- haproxy before the members -------------------------------------------
my $dir = "$ENV{CS_STATE_DIR}/t61";
mkdir $dir;
copy("$repo/conf/galera-check", "$dir/galera-check") or die "copy: $!";
chmod 0755, "$dir/galera-check";
{
    open my $fh, '>', "$dir/galera-check.cnf" or die $!;
    print $fh "[client]\nuser=$ENV{CS_DB_USER}\npassword=$ENV{CS_DB_PASS}\n";
}
my $hport = CSNode::free_port();
{
    open my $fh, '>', "$dir/haproxy.cfg" or die $!;
    print $fh <<"EOF";
global
    external-check
    insecure-fork-wanted
    daemon
    pidfile $dir/haproxy.pid
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
listen registry
    bind 127.0.0.1:$hport
    option external-check
    external-check path "/usr/bin:/bin"
    external-check command $dir/galera-check
    default-server check inter 500 fall 2 rise 2 on-marked-down shutdown-sessions
    server m1 127.0.0.1:$port{1}
    server m2 127.0.0.1:$port{2} backup
    server m3 127.0.0.1:$port{3} backup
EOF
}
system('haproxy', '-f', "$dir/haproxy.cfg") == 0 or BAIL_OUT('haproxy did not start');
my $hpid = sub { open my $fh, '<', "$dir/haproxy.pid" or return; my $p = <$fh>;
                 chomp $p if defined $p; $p };
my $main = $$;
END {
    if ($$ == $main) {
        local $?;
        my $p = $hpid->();
        kill 'TERM', $p if $p;
    }
}
ok wait_for(10, sub { $hpid->() }), 'haproxy runs';

# The member haproxy sends a new connection to.
sub via_proxy {
    my $out = qx{MYSQL_PWD=$ENV{CS_DB_PASS} mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P $hport -u $ENV{CS_DB_USER} --connect-timeout=2 -N -B -e "SELECT \@\@port" 2>/dev/null};
    chomp $out;
    return $out;
}
ok wait_for(20, sub { via_proxy() eq $port{1} }),
    'haproxy sends connections to member 1 (it passes galera-check)';

my @n = map { CSNode->new("p61$_", db_port => $hport)->start } qw(a b);
my $base = '/files/' . unique_key('t61');

# ---- writers through both nodes; member 1 killed ---------------------------
my $w = CSWriters->new('t61', $base, @n);
sub acked_since { $w->acked_since(@_) }
ok wait_for(30, sub { acked_since(0, 0) >= 5 && acked_since(1, 0) >= 5 }),
    'both nodes write through haproxy';
my $t_kill = time;
svc('galera-kill', 1);
ok wait_for(30, sub { acked_since(0, $t_kill + 1) >= 5
                      && acked_since(1, $t_kill + 1) >= 5 }),
    'member 1 killed: haproxy moves to a backup member and both nodes write '
    . 'again, without a restart';
my $moved_to = via_proxy();
ok $moved_to eq $port{2} || $moved_to eq $port{3},
    'haproxy now sends connections to member 2 or 3';
$w->stop;
my $sum = $w->summary;
note sprintf '%d acknowledged writes; longest time without one: %.1f s; '
    . 'slowest answer %.1f s', scalar @{ $sum->{acked} }, $sum->{gap},
    $sum->{slowest};
is $sum->{other}, 0, 'every write was answered 2xx or 503';
cmp_ok $sum->{slowest}, '<', 15, 'no write waited longer than 15 s';
my @lost = CSWriters::read_back($sum->{acked}, @n);
is scalar(@lost), 0, 'every acknowledged write reads back through both nodes'
    or diag join "\n", @lost[0 .. ($#lost < 9 ? $#lost : 9)];

# ---- the last member left outside the primary component --------------------
{
    my $live = $moved_to eq $port{2} ? 2 : 3;
    my $gone = $live == 2 ? 3 : 2;
    svc('galera-kill', $gone);
    ok wait_for(40, sub {
        my ($r) = timed_req(PUT => $n[0]->url . "$base/probe-" . time, 'p');
        $r->code == 503;
    }), "member $gone killed too: member $live is not Primary, and writes "
        . 'through the nodes get 503';
    my ($r, $secs) = timed_req(PUT => $n[1]->url . "$base/apart", 'p');
    is $r->code, 503, 'a write then gets 503';
    cmp_ok $secs, '<', 6, '... within the database timeout';
    svc('galera-bootstrap', $live);
    ok wait_for(40, sub {
        req(PUT => $n[0]->url . "$base/again-" . time, 'x')->is_success
        && req(PUT => $n[1]->url . "$base/again-" . time, 'x')->is_success
    }), "member $live made a primary component: both nodes write again";
}

done_testing;
